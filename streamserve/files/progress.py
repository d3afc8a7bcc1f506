"""A progress bar on a terminal (tqdm, on stderr); nothing when stderr is not one."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int) -> Any: ...

    def set_postfix_str(self, text: str) -> Any: ...

    def close(self) -> Any: ...


class Quiet:
    """What a run reports to when no bar is shown."""

    def update(self, n: int) -> None:
        return None

    def set_postfix_str(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None


def progress_bar(
    total: int | None, unit: str, description: str, *, show: bool | None = None
) -> Progress:
    """A tqdm bar of ``total`` ``unit`` (``B``: bytes, scaled) when ``show`` (default:
    when stderr is a terminal), else :class:`Quiet`."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return Quiet()
    from tqdm import tqdm

    bar: Progress = tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        desc=description,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    return bar
