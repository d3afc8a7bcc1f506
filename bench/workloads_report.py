"""The report's sections and targets for the JSON workload, the stage-by-stage split, the
producing comparison and the tree models' goals (issue 14), from one run's results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import baseline
from bench.producing import BATCHED, GROUPED, PER_RECORD
from bench.results import (
    AVRO_GOALS,
    JSON_GOALS,
    NUMPY_LOOP,
    PIPE_LOOP,
    PIPE_LOOP_BATCH,
    SCORER,
    Medians,
    Results,
    json_medians,
    medians,
    stage_rows,
    stage_totals,
)

Target = tuple[str, str, bool | None]  # what, measured, met (None: cannot tell)
STAGE_COLUMNS = ("streamserve scorer", "numpy batch loop", "per-record loop")
WORKLOADS = {"avro": "Avro doubles", "json": "JSON with strings"}


def rate_table(runs: list[dict[str, Any]]) -> list[str]:
    """Each variant's median rate, its runs and its central 90 %, then notes on runs."""
    med, bulk = medians(runs), medians(runs, "bulk_rate")
    lines = [
        "| variant | median records/s | runs | central 90 %, median |",
        "|---|---:|---|---:|",
    ]
    for name, (m, rates) in med.items():
        central = f"{bulk[name][0]:,.0f}" if bulk[name][0] else "—"
        lines.append(f"| {name} | {m:,.0f} | {_rates(rates)} | {central} |")
    notes = [f"- {r['variant']}: {r['note']}" for r in runs if r.get("note")]
    return lines + (["", "Notes on single runs:", "", *notes] if notes else [])


def ratio_targets(
    what: str, med: Medians, goals: tuple[tuple[str, float], ...], *, always: bool = False
) -> list[Target]:
    """``scorer ≥ factor x peer`` for each goal whose peer ran (``what`` names the
    workload, "" for the Avro one); with ``always`` the others too, as not measured."""
    ss = med.get(SCORER, (0.0, []))[0]
    targets: list[Target] = []
    for peer, factor in goals:
        rate = med.get(peer, (0.0, []))[0]
        if always and not (rate > 0 and ss > 0):
            targets.append((f"{what}scorer ≥ {factor} x {peer}", "not measured in this run", None))
        elif rate > 0:
            ratio = ss / rate
            targets.append(
                (
                    f"{what}scorer ≥ {factor} x {peer}",
                    f"{ratio:.2f} x ({ss:,.0f} vs {rate:,.0f}/s)",
                    ratio >= factor,
                )
            )
    return targets


# -- sections ---------------------------------------------------------------------------


def json_throughput(results: Results) -> list[str]:
    if "json_throughput" not in results:
        return []
    med = json_medians(results)
    lines = [
        "",
        "## Scoring throughput: JSON events with strings",
        "",
        "The same method over JSON events as producers write them with `json.dumps`: an id,",
        "the time and 12 features, the same 10 numbers and 2 strings (`country`, 6 values,",
        "and `device`, 4). The scorer serves its default learner, `logistic_regression`",
        "(`Preprocess | LogisticRegression`). The hand-written loop decodes each event with",
        "`json` and calls River's `predict_proba_one` on River's own parts: `StandardScaler`",
        "on the numbers, `OneHotEncoder` on the strings and a `LogisticRegression`, trained on",
        "the same 2,000 examples. The numpy batch loop decodes a batch with orjson, builds",
        "the feature matrix with the one-hot columns and scores it in one matrix product with",
        "that River model's weights (no delivery guarantees). Quix Streams and Bytewax do the",
        "hand-written loop's work. Every variant writes Avro predictions.",
        "",
        *rate_table(results["json_throughput"]),
        "",
        "Time per record, from the medians above:",
        "",
    ]
    return lines + [f"- {name}: {1e6 / m:.2f} µs" for name, (m, _) in med.items() if m > 0]


def stages(results: Results) -> list[str]:
    if not results.get("stages"):
        return []
    lines = [
        "",
        "## Where a record's time goes, stage by stage",
        "",
        "In process, no broker: batches of 1,000 events, best of 5 timings over 5,000 events",
        "(µs per record). The scorer's batch path (its batch decoder, compiled scoring and",
        "batch prediction writer, and `produce_many` with a delivery callback per record), the",
        "numpy batch loop's and the per-record loop's (fastavro or `json`, River's",
        '`predict_proba_one`, fastavro). "produce" queues the outputs in a producer with no',
        "broker: what the producing thread pays to hand them over.",
    ]
    for fmt, title in WORKLOADS.items():
        rows = stage_rows(results, fmt)
        if not rows:
            continue
        lines += ["", f"{title}:", "", "| stage | " + " | ".join(STAGE_COLUMNS) + " |"]
        lines.append("|---|---:|---:|---:|")
        lines += [f"| {r[0]} | " + " | ".join(f"{v:.2f}" for v in r[1:]) + " |" for r in rows]
        total = " | ".join(f"**{t:.2f}**" for t in stage_totals(results, fmt))
        lines.append(f"| all four | {total} |")
    return lines


def producing(results: Results) -> list[str]:
    p = results.get("producing")
    if not p:
        return []
    lines = [
        "",
        "## Producing: `produce_batch` against `produce` per record",
        "",
        "Each way produces the throughput input (batches of 1,000 records, a delivery",
        "callback per record counted in the batch as the scorer counts them, `poll(0)` after",
        "each batch, then `flush`) with streamserve's producer settings (idempotent, acks all,",
        "linger.ms 5) to a fresh topic of 4 partitions; the ways alternate in rounds. CPU",
        "µs/record: the producing thread's CPU time (its calls and the delivery callbacks it",
        "serves) and the whole process's (with librdkafka's own threads); records/s from the",
        "first call to the last acknowledgement. Medians of the rounds.",
        "",
        "| way | records/s acknowledged | runs | thread CPU µs/record | process CPU µs/record |",
        "|---|---:|---|---:|---:|",
    ]
    rates, cpu, _ = producing_medians(results)
    process = medians(_as_variants(p["runs"]), "process_cpu_us")
    for way, (m, runs) in rates.items():
        whole = f"{process[way][0]:.2f}" if process[way][0] else "—"
        lines.append(f"| {way} | {m:,.0f} | {_rates(runs)} | {cpu[way][0]:.2f} | {whole} |")
    lines += ["", "The pipe on streamserve's consumer loop, producing each way:", ""]
    lines += rate_table(p["pipes"])
    return lines + _producing_checks(results)


def _producing_checks(results: Results) -> list[str]:
    p = results["producing"]
    lines = [""]
    queued = results.get("queue_batched")
    if queued:
        lines.append(
            f"- In process, no broker: queueing batches of 1,000 records with a delivery "
            f"callback each took {queued[0]:.2f} µs per record with `produce_batch` and "
            f"{queued[1]:.2f} µs with `produce` per record."
        )
    part = p["partitioner"]
    lines.append(
        f"- librdkafka's default partitioner put {part['where_crc32_puts_them']:,} of "
        f"{part['keys']:,} keys where CRC32 of the key modulo the partition count puts them. "
        f"Given to `produce_batch` with a per-message `partition` of 3 and no batch "
        f"partition, {part['batch_where_crc32_puts_them']:,} landed where CRC32 puts them and "
        f"{part['batch_partition_field_honoured']:,} in partition 3: the binding ignores the "
        "per-message field (it does not pass `RD_KAFKA_MSG_F_PARTITION`), so grouping by "
        "partition means one call per partition with its `partition` argument."
    )
    for way, t in p["transactions"].items():
        lines.append(
            f"- In transactions, {way}: {t['acked']:,} of {2 * t['records']:,} records "
            f"acknowledged; of a committed transaction's {t['records']:,}, "
            f"{t['committed_kept']:,} committed in the log; of an aborted one's, "
            f"{t['aborted_kept']:,} (its abort marker dropped {t['aborted_dropped']:,})."
        )
    return lines


def model_baseline(results: Results) -> list[str]:
    if "models" not in results:
        return []
    figures = ", ".join(f"{name} {rate:,.0f}/s" for name, rate in baseline.MODEL_RATES.items())
    return [
        "",
        f"Today's figures for the tree goals, measured {baseline.DATE}: {figures} "
        f"({baseline.SOURCE}; kept in `bench/baseline.py`).",
    ]


# -- targets ----------------------------------------------------------------------------


def json_targets(results: Results) -> list[Target]:
    return ratio_targets("JSON with strings: ", json_medians(results), JSON_GOALS, always=True)


def avro_targets(results: Results) -> list[Target]:
    """The numpy batch loop goal, shown as not measured when the run has no such loop."""
    med = medians(results.get("throughput", []))
    return [t for t in ratio_targets("", med, AVRO_GOALS, always=True) if t[2] is None]


def model_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    for row in results.get("models", []):
        base = baseline.MODEL_RATES.get(row["model"])
        if base:
            ratio = row["scorer_rate"] / base
            targets.append(
                (
                    f"{row['model']}: scorer ≥ {baseline.TREE_FACTOR:.0f} x "
                    f"{base:,.0f}/s ({baseline.DATE})",
                    f"{ratio:.2f} x ({row['scorer_rate']:,.0f}/s)",
                    ratio >= baseline.TREE_FACTOR,
                )
            )
    return targets


# -- helpers ----------------------------------------------------------------------------


def _as_variants(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "variant": r["way"]} for r in runs]


def _rates(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


def producing_medians(results: Results) -> tuple[Medians, Medians, Medians]:
    """Per way: median rate, median thread CPU µs/record; per loop pipe: median rate."""
    p = results.get("producing") or {}
    runs = _as_variants(p.get("runs", []))
    return medians(runs, "rate"), medians(runs, "cpu_us"), medians(p.get("pipes", []))


def pipe_gain(results: Results) -> float | None:
    """The loop pipe's median rate with produce_batch over with produce per record."""
    pipes = producing_medians(results)[2]
    each, batch = pipes.get(PIPE_LOOP, (0.0, []))[0], pipes.get(PIPE_LOOP_BATCH, (0.0, []))[0]
    return batch / each if each and batch else None


SECTIONS: tuple[Callable[[Results], list[str]], ...] = (json_throughput, stages, producing)
JUDGES: tuple[Callable[[Results], list[Target]], ...] = (avro_targets, json_targets, model_targets)


# -- what bounds the goals (paragraphs of "What bounds the targets") --------------------


def json_bound(results: Results) -> list[str]:
    med = json_medians(results)
    return _against_peers(results, med, "json", JSON_GOALS, "JSON with strings")


def avro_numpy_bound(results: Results) -> list[str]:
    med = medians(results.get("throughput", []))
    return _against_peers(results, med, "avro", AVRO_GOALS, "Avro doubles")


def _against_peers(
    results: Results,
    med: Medians,
    fmt: str,
    goals: tuple[tuple[str, float], ...],
    title: str,
) -> list[str]:
    """A goal paragraph: the ratios, each missed one's shortfall, the stage split."""
    ss = med.get(SCORER, (0.0, []))[0]
    ran = [(peer, f, med[peer][0]) for peer, f in goals if med.get(peer, (0.0, []))[0] > 0]
    if not ss or not ran:
        return []
    head = (
        f"- **{title} ("
        + ", ".join(f"scorer ≥ {f} x the {peer}" for peer, f, _ in ran)
        + "): "
        + "; ".join(
            f"{_met(ss / rate >= f)}, {ss / rate:.2f} x the {peer}" for peer, f, rate in ran
        )
        + ".**"
    )
    runs_us = {SCORER: 1e6 / ss, **{peer: 1e6 / rate for peer, _, rate in ran}}
    text = [
        head,
        "Per record (from the medians) the scorer took "
        + ", the ".join(
            f"{us:.2f} µs" if n == SCORER else f"{n} {us:.2f} µs" for n, us in runs_us.items()
        )
        + ".",
    ]
    for peer, f, rate in ran:
        if ss / rate < f:
            need = 1e6 / (f * rate)
            text.append(
                f"To reach {f} x the {peer} it needed {f * rate:,.0f}/s, {need:.2f} µs per "
                f"record: {runs_us[SCORER] - need:.2f} µs less than it took."
            )
    text += _stage_compare(results, fmt, runs_us)
    return ["", " ".join(text)]


def _stage_compare(results: Results, fmt: str, runs_us: dict[str, float]) -> list[str]:
    rows, totals = stage_rows(results, fmt), stage_totals(results, fmt)
    if not rows:
        return []
    pairs = ", ".join(f"{r[0]} {r[1]:.2f} against {r[2]:.2f}" for r in rows)
    largest = max(rows, key=lambda r: float(r[1]) - float(r[2]))
    text = [
        f"In process (the stage table) decode, score, encode and produce took {totals[0]:.2f} "
        f"µs per record on the scorer's batch path and {totals[1]:.2f} µs in the numpy batch "
        f"loop ({pairs}); the largest difference is {largest[0]} "
        f"({float(largest[1]) - float(largest[2]):+.2f} µs)."
    ]
    if NUMPY_LOOP in runs_us:
        text.append(
            f"Beyond those stages the scorer's run took {runs_us[SCORER] - totals[0]:.2f} µs per "
            "record (its consumer loop, offsets stored after acknowledgement, the delivery "
            "callbacks, the input drift monitor, librdkafka's calls) and the numpy loop's "
            f"{runs_us[NUMPY_LOOP] - totals[1]:.2f} µs."
        )
    return text


def trees_bound(results: Results) -> list[str]:
    rows = [r for r in results.get("models", []) if r["model"] in baseline.MODEL_RATES]
    if not rows:
        return []
    factor = baseline.TREE_FACTOR
    text = [f"- **Trees (≥ {factor:.0f} x today's figures, {baseline.DATE}).**"]
    for r in rows:
        goal = factor * baseline.MODEL_RATES[r["model"]]
        leaves = 1e6 / goal
        text.append(
            f"{r['model']}: {_met(r['scorer_rate'] >= goal)}, {r['scorer_rate']:,.0f}/s, "
            f"{r['scorer_rate'] / baseline.MODEL_RATES[r['model']]:.2f} x; the goal, "
            f"{goal:,.0f}/s, leaves {leaves:.1f} µs per record, and a batch prediction alone "
            f"took {r['predict_us']:.1f} µs per record in process"
            + (" (more than that: prediction bounds it)." if r["predict_us"] > leaves else ".")
        )
    return ["", " ".join(text)]


def producing_bound(results: Results) -> list[str]:
    rates, cpu, _ = producing_medians(results)
    ways = [PER_RECORD, BATCHED, GROUPED]
    if not all(w in rates for w in ways):
        return []
    each, batched, grouped = ((rates[w][0], cpu[w][0]) for w in ways)
    gain = pipe_gain(results)
    votes = {batched[1] < each[1], gain is None or gain > 1.0}
    verdict = (
        "was faster"
        if votes == {True}
        else "was not faster"
        if votes == {False}
        else "gave mixed results (see below)"
    )
    text = [
        f"- **Producing: `produce_batch` {verdict} than `produce` per record.** The producing "
        f"thread's CPU per record was {batched[1]:.2f} µs with one `produce_batch` per batch "
        f"(librdkafka's partitioner), {grouped[1]:.2f} µs with one per partition (grouped by "
        f"CRC32 in Python) and {each[1]:.2f} µs with `produce` per record; acknowledged "
        f"{batched[0]:,.0f}, {grouped[0]:,.0f} and {each[0]:,.0f} records/s."
    ]
    if gain is not None:
        text.append(
            f"On the consumer loop the pipe with `produce_batch` ran at {gain:.2f} x the pipe "
            "with `produce` per record."
        )
    text.append(
        "Both keep a delivery report per record and both produce inside transactions (the "
        "checks under the producing table); `produce_batch` takes no headers (dead letters "
        "need `produce`) and no timestamps."
    )
    return ["", " ".join(text)]


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


BOUNDS: tuple[Callable[[Results], list[str]], ...] = (
    json_bound,
    avro_numpy_bound,
    trees_bound,
    producing_bound,
)
