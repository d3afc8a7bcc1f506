"""What a role needs of a batch codec: read a micro-batch at once, write one at once.

The scorer and the learner are given these (or None) when they are assembled; each
implementation reads or writes what it can and leaves every other record to the
per-record codecs, which also produce the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streamserve.records import ColumnScores, Ints, ServingFields
from streamserve.serde.fast.event_columns import EventColumns, RecordTimes
from streamserve.serde.fast.example_rows import ExampleRows


class EventBatchDecoder(Protocol):
    def read(
        self, values: Sequence[bytes], record_times: RecordTimes | None = None
    ) -> EventColumns | None:
        """The batch's events this decoder reads, as columns (``positions`` says which);
        None when it reads none. ``record_times`` gives the Kafka timestamps of events
        whose own ``ts`` is null."""
        ...


class ExampleBatchDecoder(Protocol):
    def read(self, values: Sequence[bytes]) -> ExampleRows:
        """The batch's examples this decoder reads (None in ``features`` for the others)."""
        ...


class PredictionBatchEncoder(Protocol):
    def write(
        self,
        columns: EventColumns,
        rows: Ints,
        model: str,
        version: int,
        scores: ColumnScores,
        scored_at: int,
        serving: ServingFields,
    ) -> list[bytes] | None:
        """The predictions of ``rows`` of ``columns`` (``scores`` and ``serving`` hold
        every row's; the scores of ``rows`` are valid), or None when this encoder cannot
        write them (encode those per record)."""
        ...
