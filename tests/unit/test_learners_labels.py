"""Label coercion: what each task accepts, and clear errors for everything else."""

from __future__ import annotations

import math

import pytest

from streamserve.errors import StreamserveError
from streamserve.learners.exceptions import LabelError
from streamserve.learners.labels import coerce_label, label_coercer
from streamserve.learners.spec import Task
from streamserve.records import LabelValue

ACCEPTED: list[tuple[Task, LabelValue, LabelValue]] = [
    (Task.BINARY, True, True),
    (Task.BINARY, False, False),
    (Task.BINARY, 1, True),
    (Task.BINARY, 0, False),
    (Task.BINARY, 1.0, True),
    (Task.BINARY, 0.0, False),
    (Task.BINARY, "true", True),
    (Task.BINARY, "FALSE", False),
    (Task.BINARY, "Yes", True),
    (Task.BINARY, "no", False),
    (Task.BINARY, "1", True),
    (Task.BINARY, " 0 ", False),
    (Task.MULTICLASS, "cat", "cat"),
    (Task.MULTICLASS, True, "true"),
    (Task.MULTICLASS, False, "false"),
    (Task.MULTICLASS, 3, "3"),
    (Task.MULTICLASS, -7, "-7"),
    (Task.MULTICLASS, 2.0, "2"),
    (Task.MULTICLASS, 2.5, "2.5"),
    (Task.MULTICLASS, 1e20, "100000000000000000000"),
    (Task.REGRESSION, 3, 3.0),
    (Task.REGRESSION, -2.5, -2.5),
    (Task.REGRESSION, "4.25", 4.25),
    (Task.REGRESSION, " -1e3 ", -1000.0),
]


@pytest.mark.parametrize(("task", "value", "expected"), ACCEPTED)
def test_accepted_labels_are_coerced(task: Task, value: LabelValue, expected: LabelValue) -> None:
    result = coerce_label(task, value)
    assert result == expected
    assert type(result) is type(expected)
    assert label_coercer(task)(value) == expected


REJECTED: list[tuple[Task, object, str]] = [
    (Task.BINARY, 2, "binary label must be"),
    (Task.BINARY, 0.5, "binary label must be"),
    (Task.BINARY, "maybe", "'true'/'false'"),
    (Task.BINARY, "", "binary label must be"),
    (Task.BINARY, None, "binary label must be"),
    (Task.BINARY, math.nan, "binary label must be"),
    (Task.MULTICLASS, "", "non-empty"),
    (Task.MULTICLASS, math.nan, "finite"),
    (Task.MULTICLASS, math.inf, "finite"),
    (Task.MULTICLASS, None, "multiclass label must be"),
    (Task.MULTICLASS, [1], "multiclass label must be"),
    (Task.REGRESSION, True, "regression label must be"),
    (Task.REGRESSION, "abc", "numeric text"),
    (Task.REGRESSION, "nan", "finite"),
    (Task.REGRESSION, math.inf, "finite"),
    (Task.REGRESSION, -math.inf, "finite"),
    (Task.REGRESSION, 10**400, "regression label must be"),
    (Task.REGRESSION, None, "regression label must be"),
]


@pytest.mark.parametrize(("task", "value", "message"), REJECTED)
def test_rejected_labels_say_what_was_expected(task: Task, value: object, message: str) -> None:
    with pytest.raises(LabelError, match=message) as info:
        coerce_label(task, value)  # type: ignore[arg-type]
    assert isinstance(info.value, StreamserveError)
    assert repr(value)[:10] in str(info.value)
