"""The peers' own virtualenv (Quix Streams, Bytewax), kept apart from the project's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-peers"
PACKAGES = [
    "quixstreams==3.28.1",
    "bytewax==0.21.1",
    "fastavro",
    "river==0.26.1",
    "confluent-kafka",
    "py-spy",
]


def ensure_venv() -> str:
    """The peers' python, creating the virtualenv and installing the peers if needed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} for the peers ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    check = subprocess.run(
        [str(python), "-c", "import quixstreams, bytewax, fastavro, river"],
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        print("installing the peers (quixstreams, bytewax) ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return str(python)


def version(python: str, module: str) -> str:
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({module!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"
