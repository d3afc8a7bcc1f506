"""Coerce labels as they arrive (JSON, Avro, CSV-ish text) to the type a task learns."""

from __future__ import annotations

import math
from collections.abc import Callable

from streamserve.learners.exceptions import LabelError
from streamserve.learners.spec import Task
from streamserve.records import LabelValue

_TRUE_TEXT = frozenset({"true", "1", "yes"})
_FALSE_TEXT = frozenset({"false", "0", "no"})


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _binary(value: LabelValue) -> bool:
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[return-value]
    if kind is int or kind is float:
        if value == 1:
            return True
        if value == 0:
            return False
    elif kind is str:
        text = value.strip().lower()  # type: ignore[union-attr]
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    raise LabelError(
        f"binary label must be a bool, 0/1, or one of 'true'/'false'/'1'/'0'/'yes'/'no' "
        f"(any case); got {_describe(value)}"
    )


def _multiclass(value: LabelValue) -> str:
    kind = type(value)
    if kind is str:
        if value:
            return value  # type: ignore[return-value]
        raise LabelError("multiclass label must be a non-empty string or a number; got ''")
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        f: float = value  # type: ignore[assignment]
        if not math.isfinite(f):
            raise LabelError(f"multiclass label must be a finite number or text; got {f!r}")
        return str(int(f)) if f.is_integer() else repr(f)
    raise LabelError(f"multiclass label must be text, a number or a bool; got {_describe(value)}")


def _regression(value: LabelValue) -> float:
    kind = type(value)
    y: float
    try:
        if kind is float or kind is int:
            y = float(value)
        elif kind is str:
            y = float(value.strip())  # type: ignore[union-attr]
        else:
            raise LabelError(
                f"regression label must be a number or numeric text; got {_describe(value)}"
            )
    except (ValueError, OverflowError) as exc:
        raise LabelError(
            f"regression label must be a number or numeric text; got {_describe(value)}"
        ) from exc
    if not math.isfinite(y):
        raise LabelError(f"regression label must be a finite number; got {_describe(value)}")
    return y


_COERCERS: dict[Task, Callable[[LabelValue], LabelValue]] = {
    Task.BINARY: _binary,
    Task.MULTICLASS: _multiclass,
    Task.REGRESSION: _regression,
}


def label_coercer(task: Task) -> Callable[[LabelValue], LabelValue]:
    """The coercion function for ``task`` (look it up once, call it per record)."""
    return _COERCERS[task]


def coerce_label(task: Task, value: LabelValue) -> LabelValue:
    """Coerce ``value`` to the type ``task`` learns; raise :class:`LabelError` if it cannot.

    - binary → bool: bool; 0/1 as int or float; text "true"/"false"/"1"/"0"/"yes"/"no"
      in any case (surrounding whitespace ignored);
    - multiclass → str: bools become "true"/"false", ints and integral floats their
      decimal text (``2.0`` → ``"2"``), other finite floats their shortest text, strings
      unchanged (empty text and NaN/inf are rejected);
    - regression → float: ints, finite floats and numeric text; bools, other text and
      NaN/inf are rejected.
    """
    return _COERCERS[task](value)
