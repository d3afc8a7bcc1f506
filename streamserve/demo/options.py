"""What ``streamserve demo`` was asked to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamserve.demo.exceptions import DemoError

DEFAULT_EVENTS = 12_000
DEFAULT_RATE = 250.0
DEFAULT_LABEL_DELAY = "1s"
DEFAULT_OUT = "demo-report"


@dataclass(frozen=True, slots=True)
class LabelDelay:
    """How long a label waits after its event: a number of seconds or of later events."""

    seconds: float | None = None
    events: int | None = None

    def __str__(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:g}s"
        return f"{self.events} events"


def parse_label_delay(text: str) -> LabelDelay:
    """``"2s"`` or ``"1.5s"``: seconds; ``"300"``: events. Zero means at once."""
    raw = text.strip().lower()
    try:
        if raw.endswith("s"):
            seconds = float(raw[:-1])
            if not 0 <= seconds < float("inf"):
                raise ValueError(raw)
            return LabelDelay(seconds=seconds)
        events = int(raw)
    except ValueError as exc:
        raise DemoError(
            f"--label-delay: {text!r} is neither seconds (like 2s) nor a number of events"
        ) from exc
    if events < 0:
        raise DemoError(f"--label-delay: {text!r} must not be negative")
    return LabelDelay(events=events)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    events: int = DEFAULT_EVENTS
    label_delay: LabelDelay = LabelDelay(seconds=1.0)
    rate: float = DEFAULT_RATE
    out: Path = Path(DEFAULT_OUT)
    seed: int = 42
    live: bool = True  # redraw the view in place (a terminal); else one line per refresh
    drain_timeout_s: float = 60.0  # after publishing, wait at most this for the predictions

    def __post_init__(self) -> None:
        if self.events < 100:
            raise DemoError("--events must be at least 100")
        if not self.rate > 0 or self.rate == float("inf"):
            raise DemoError("--rate must be a positive number of events per second")
