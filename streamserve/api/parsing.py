"""Request bodies turned into jobs and records, every problem a 400 naming the field.

- TF Serving ``instances``: a list of feature maps, or of ``{"event_id", "features"}``
  objects (``ts`` optional);
- Open Inference v2 ``inputs``: one named input per feature, each a column (``shape``
  ``[n]`` or ``[n, 1]``), as MLServer's pandas codec reads them; an input named
  ``event_id`` (BYTES) gives each row's event id;
- feedback ``labels``: ``{"event_id", "label"}`` objects (``ts`` optional).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamserve.api.exceptions import BadRequest, TooLarge
from streamserve.api.jobs import Job
from streamserve.learners.labels import coerce_label
from streamserve.learners.spec import Task
from streamserve.records import Event, FeatureFrame, Features, Label
from streamserve.serde.validate import event_id_problem, features_problem, label_problem

EVENT_KEYS = frozenset({"event_id", "features", "ts"})
TS_MIN, TS_MAX = -(2**63), 2**63 - 1

NUMERIC_TYPES = frozenset(
    {
        "FP64",
        "FP32",
        "FP16",
        "INT64",
        "INT32",
        "INT16",
        "INT8",
        "UINT64",
        "UINT32",
        "UINT16",
        "UINT8",
    }
)
V2_TYPES = NUMERIC_TYPES | {"BOOL", "BYTES"}
EVENT_ID_INPUT = "event_id"


@dataclass(slots=True)
class Instances:
    """A request's job and the event ids (and times) its instances carry."""

    job: Job
    event_ids: list[str | None] = field(default_factory=list)
    ts: list[int | None] = field(default_factory=list)

    def events(self) -> list[Event]:
        """The instances that carry an event id, as events."""
        rows = self.job.as_rows()
        return [
            Event(eid, rows[i], self.ts[i] if self.ts else None)
            for i, eid in enumerate(self.event_ids)
            if eid is not None
        ]


def _object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object with {what}")
    return body


def _count(n: int, max_instances: int, what: str) -> None:
    if n == 0:
        raise BadRequest(f"'{what}' is empty")
    if n > max_instances:
        raise TooLarge(f"{n} {what} is more than api.max_instances ({max_instances})")


def _ts(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not TS_MIN <= value <= TS_MAX:
        raise BadRequest(f"{where}.ts must be epoch milliseconds (an integer)")
    return value


# -- TF Serving ---------------------------------------------------------------------


def tf_instances(body: Any, max_instances: int) -> Instances:
    obj = _object(body, "'instances'")
    unknown = sorted(set(obj) - {"instances", "signature_name"})
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}' (expected 'instances')")
    instances = obj.get("instances")
    if not isinstance(instances, list):
        raise BadRequest(
            "'instances' must be a list of feature maps or {event_id, features} objects"
        )
    _count(len(instances), max_instances, "instances")
    rows: list[Features] = []
    ids: list[str | None] = []
    times: list[int | None] = []
    for i, inst in enumerate(instances):
        if type(inst) is not dict:
            raise BadRequest(f"instances[{i}] must be an object")
        if "features" in inst and type(inst["features"]) is dict and inst.keys() <= EVENT_KEYS:
            eid = inst.get("event_id")
            if eid is not None:
                problem = event_id_problem(eid)
                if problem:
                    raise BadRequest(f"instances[{i}]: {problem}")
            features = inst["features"]
            ids.append(eid)
            times.append(_ts(inst.get("ts"), f"instances[{i}]"))
        else:
            features = inst
            ids.append(None)
            times.append(None)
        if not _plain(features):
            problem = features_problem(features)
            if problem:
                raise BadRequest(f"instances[{i}]: {problem}")
        rows.append(features)
    return Instances(Job(len(rows), rows=rows), ids, times)


_PLAIN = frozenset({float, str, bool, type(None)})


def _plain(features: dict[str, Any]) -> bool:
    """Whether every value is a float, string, bool or null: fine without a closer look
    (JSON keys are strings; integers need their range checked)."""
    return _PLAIN.issuperset(map(type, features.values()))


# -- Open Inference Protocol v2 -----------------------------------------------------


def v2_inputs(body: Any, max_instances: int) -> tuple[Instances, list[str] | None, str | None]:
    """The request's instances, the outputs it asks for (None: all) and its id."""
    obj = _object(body, "'inputs'")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of named tensors")
    request_id = obj.get("id")
    if request_id is not None and type(request_id) is not str:
        raise BadRequest("'id' must be a string")
    columns: dict[str, list[Any]] = {}
    byte_columns: set[str] = set()
    event_ids: list[str | None] = []
    n = -1
    for k, tensor in enumerate(inputs):
        name, datatype, data = _tensor(tensor, f"inputs[{k}]", max_instances)
        if n < 0:
            n = len(data)
        elif len(data) != n:
            raise BadRequest(f"inputs[{k}] ({name!r}) has {len(data)} rows; inputs[0] has {n}")
        if name in columns or (name == EVENT_ID_INPUT and event_ids):
            raise BadRequest(f"inputs[{k}]: input {name!r} is given twice")
        if name == EVENT_ID_INPUT and datatype == "BYTES":
            event_ids = _event_ids(data, f"inputs[{k}]")
            continue
        columns[name] = data
        if datatype == "BYTES":
            byte_columns.add(name)
    _count(n, max_instances, "rows")
    job = Job(n, columns=columns, frame=_frame(columns, byte_columns, n))
    return Instances(job, event_ids), _outputs(obj.get("outputs")), request_id


def _tensor(tensor: Any, where: str, max_instances: int) -> tuple[str, str, list[Any]]:
    if type(tensor) is not dict:
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if type(name) is not str or not name:
        raise BadRequest(f"{where}.name must be a non-empty string")
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in V2_TYPES:
        raise BadRequest(f"{where}.datatype must be one of {', '.join(sorted(V2_TYPES))}")
    shape = tensor.get("shape")
    if (
        type(shape) is not list
        or not 1 <= len(shape) <= 2
        or any(type(d) is not int or d < 0 for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise BadRequest(f"{where}.shape must be [n] or [n, 1] (one column per input)")
    if shape[0] > max_instances:
        raise TooLarge(
            f"{where} has {shape[0]} rows, more than api.max_instances ({max_instances})"
        )
    data = tensor.get("data")
    if type(data) is not list:
        raise BadRequest(f"{where}.data must be a list")
    if data and type(data[0]) is list:  # nested as [[v], [v], ...]
        if not all(type(row) is list and len(row) == 1 for row in data):
            raise BadRequest(f"{where}.data must hold one value per row")
        data = [row[0] for row in data]
    if len(data) != shape[0]:
        raise BadRequest(f"{where}.data has {len(data)} values; its shape says {shape[0]}")
    _check_values(data, datatype, f"{where} ({name!r})")
    return name, datatype, data


def _check_values(data: list[Any], datatype: str, where: str) -> None:
    if datatype == "BYTES":
        ok = all(type(v) is str or v is None for v in data)
        expected = "strings"
    elif datatype == "BOOL":
        ok = all(type(v) is bool or v is None for v in data)
        expected = "booleans"
    elif datatype.startswith(("INT", "UINT")):
        ok = all((type(v) is int and TS_MIN <= v <= TS_MAX) or v is None for v in data)
        expected = "64-bit integers"
    else:
        ok = all(type(v) in (int, float) or v is None for v in data) and all(
            type(v) is not int or TS_MIN <= v <= TS_MAX for v in data
        )
        expected = "numbers"
    if not ok:
        raise BadRequest(f"{where}: datatype {datatype} needs {expected} (or null) in data")


def _event_ids(data: list[Any], where: str) -> list[str | None]:
    for r, value in enumerate(data):
        if value is not None:
            problem = event_id_problem(value)
            if problem:
                raise BadRequest(f"{where} row {r}: {problem}")
    return data


def _frame(columns: dict[str, list[Any]], byte_columns: set[str], n: int) -> FeatureFrame:
    """The columns as :meth:`FeatureFrame.of_rows` makes them of the same rows: numbers
    (booleans as 0/1, NaN for null), and strings apart (a column of strings and nulls
    also as numbers, NaN throughout, as its nulls are missing numbers)."""
    numeric: list[str] = []
    numbers: list[list[float]] = []
    strings: dict[str, list[str | None]] = {}
    for name, data in columns.items():
        if name not in byte_columns:
            numeric.append(name)
            numbers.append([math.nan if v is None else float(v) for v in data])
            continue
        strings[name] = data
        if None in data:
            numeric.append(name)
            numbers.append([math.nan] * n)
    values = np.array(numbers, dtype=np.float64).T.reshape(n, len(numeric))
    return FeatureFrame(tuple(numeric), np.ascontiguousarray(values), strings)


def _outputs(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if type(raw) is not list or not all(
        type(o) is dict and type(o.get("name")) is str for o in raw
    ):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    return [o["name"] for o in raw]


# -- feedback -----------------------------------------------------------------------


def feedback_labels(body: Any, task: Task, max_instances: int) -> list[Label]:
    obj = _object(body, "'labels'")
    unknown = sorted(set(obj) - {"labels"})
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}' (expected 'labels')")
    labels = obj.get("labels")
    if not isinstance(labels, list):
        raise BadRequest("'labels' must be a list of {event_id, label} objects")
    _count(len(labels), max_instances, "labels")
    out: list[Label] = []
    for i, item in enumerate(labels):
        if type(item) is not dict:
            raise BadRequest(f"labels[{i}] must be an object with event_id and label")
        extra = sorted(set(item) - {"event_id", "label", "ts"})
        if extra:
            raise BadRequest(f"labels[{i}]: unknown field '{extra[0]}'")
        problem = event_id_problem(item.get("event_id")) or label_problem(item.get("label"))
        if problem:
            raise BadRequest(f"labels[{i}]: {problem}")
        try:
            coerce_label(task, item["label"])
        except Exception as exc:
            raise BadRequest(f"labels[{i}]: not a {task.value} label: {exc}") from None
        out.append(Label(item["event_id"], item["label"], _ts(item.get("ts"), f"labels[{i}]")))
    return out
