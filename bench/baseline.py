"""The figures issue 14's tree goals are multiples of ("today's figures"): the model-size
rows of the last full run before that work, kept here with their date and source because
every full run rewrites docs/BENCHMARKS.json."""

from __future__ import annotations

DATE = "2026-12-01"
SOURCE = (
    "the model-size rows of docs/BENCHMARKS.json from the full `python -m bench` run "
    "committed in ad1ed8a (50,000 records per model)"
)
# The scorer's records/s per model, as that file has them.
MODEL_RATES: dict[str, float] = {
    "Hoeffding tree": 54466.23093681917,
    "adaptive random forest (10 trees)": 12345.67901234568,
}
TREE_FACTOR = 5.0  # events scored per second at least this many times the figures above
