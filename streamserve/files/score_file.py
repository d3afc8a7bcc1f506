"""``score-file``: every row of a file scored by one model version, chunk by chunk.

Memory stays bounded by the chunk size whatever the file's: each chunk is read, scored
(:class:`~streamserve.files.scoring.ChunkScorer`), written and dropped before the next.
The output and the rejects file are complete only when the run succeeds (they are renamed
into place at the end); rejected rows are counted in
``streamserve_file_rows_rejected_total`` and logged at WARNING.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from streamserve.files.formats import Format
from streamserve.files.progress import Progress
from streamserve.files.reading import RowSource
from streamserve.files.scoring import ChunkScorer, FileModel
from streamserve.files.writing import AtomicFile, RejectsWriter, answer_writer
from streamserve.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreFileReport:
    """What a run did."""

    model: str
    version: int
    rows: int
    scored: int
    rejected: int
    seconds: float
    out: Path
    rejects: Path

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"scored {self.scored} rows of {self.rows} with {self.model} v{self.version} "
            f"in {self.seconds:.2f} s ({self.rows_per_second:,.0f} rows/s) -> {self.out}"
        )
        if self.rejected:
            text += f"; {self.rejected} rejected -> {self.rejects}"
        return text


def score_file(
    source: RowSource,
    model: FileModel,
    out: Path,
    out_format: Format,
    rejects_path: Path,
    *,
    metrics: Metrics,
    progress: Progress,
) -> ScoreFileReport:
    """Score every row of ``source`` into ``out`` (``out_format``); rejects to
    ``rejects_path``."""
    started = time.perf_counter()
    scorer = ChunkScorer(model)
    target = AtomicFile(out)
    rejects = RejectsWriter(rejects_path)
    writer = answer_writer(out_format, target.file, model.spec.task)
    rows = scored = 0
    try:
        for chunk in source.chunks():
            answers, failed = scorer.score(chunk)
            writer.write(answers)
            rejects.write(chunk.rejects + failed)
            rows += len(chunk) + len(chunk.rejects)
            scored += len(answers)
            progress.update(chunk.progress)
            if rejects.count:
                progress.set_postfix_str(f"{rejects.count} rejected")
        writer.close()
        target.commit()
        rejects.commit()
    except BaseException:
        target.discard()
        rejects.discard()
        raise
    finally:
        progress.close()
    if rejects.count:
        metrics.file_rows_rejected.labels("score-file", model.name).inc(rejects.count)
        first = rejects.first
        assert first is not None
        logger.warning(
            "score-file: %d of %d rows rejected, written to %s (first: row %d: %s)",
            rejects.count,
            rows,
            rejects_path,
            first.row,
            first.reason,
        )
    return ScoreFileReport(
        model.name,
        model.version,
        rows,
        scored,
        rejects.count,
        time.perf_counter() - started,
        out,
        rejects_path,
    )
