"""What a fault test injected and counted: one row of docs/RELIABILITY.md.

Rows are appended as JSON lines to ``$STREAMSERVE_RELIABILITY_OUT`` when it is set (the
report command sets it); otherwise they are only kept in memory.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

OUT_ENV = "STREAMSERVE_RELIABILITY_OUT"


@dataclass
class Tally:
    test: str
    fault: str = ""
    injected: int = 0
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    bad_inputs: int = 0
    crashes: int = 0
    notes: str = ""
    result: str = ""  # the test's outcome: passed, failed, xfailed

    def write(self) -> None:
        out = os.environ.get(OUT_ENV)
        if not out or not self.fault:
            return
        with Path(out).open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(self)) + "\n")
