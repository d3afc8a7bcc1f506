"""Per model, champion and shadow alike, the live prequential metrics are in ``/metrics``,
in ``models list`` and in each prediction's metadata (real broker and Redis)."""

from __future__ import annotations

import random
import urllib.request
from typing import Any

from streamserve.records import Prediction
from tests.integration.harness import make_settings, produce_json, read_topic, running, wait_for

N = 600


def _rows(uid: str, n: int, labelled: bool, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(start)
    rows = []
    for i in range(start, start + n):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        row: dict[str, Any] = {"event_id": f"{uid}-{i}", "features": {"a": a, "b": b}}
        if labelled:
            row["label"] = a + b > 0
        rows.append(row)
    return rows


def test_champion_and_shadow_metrics_in_metrics_listing_and_predictions(
    bootstrap: str, redis_url: str, uid: str
) -> None:
    models = [
        {"name": "lr", "task": "binary", "learner": "logistic_regression"},
        {"name": "nb", "task": "binary", "learner": "naive_bayes"},
    ]
    s = make_settings(bootstrap, redis_url, uid, models=models, serving={"champion": "lr"})
    with running(s, roles=("scorer", "learner")) as app:
        rt = app.rt
        produce_json(bootstrap, rt.topics["examples"], _rows(uid, N, labelled=True))

        def learned(model: str) -> bool:
            version = rt.store.serving_version(model)
            meta = None if version is None else rt.store.get_meta(model, version)
            return meta is not None and meta.examples_seen >= N

        wait_for(lambda: learned("lr") and learned("nb"), 60, "both models to checkpoint")
        # the models listing: each model's serving version with its metrics
        listing = {m["model"]: m for m in rt.lifecycle.listing()["models"]}
        assert set(listing) == {"lr", "nb"}
        metrics: dict[str, dict[str, float]] = {}
        for name in ("lr", "nb"):
            version = rt.store.serving_version(name)
            assert version is not None
            meta = rt.store.get_meta(name, version)
            assert meta is not None and meta.metrics and "accuracy" in meta.metrics
            metrics[name] = dict(meta.metrics)
            rows = [v for v in listing[name]["versions"] if v["version"] == version]
            assert rows and rows[0]["metrics"] == meta.metrics
        assert listing["lr"]["role"] == "champion" and listing["nb"]["role"] == "shadow"
        # /metrics: each model's prequential metrics, as of its last checkpoint
        assert app.status is not None
        url = f"http://127.0.0.1:{app.status.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        for name in ("lr", "nb"):
            line = next(
                ln
                for ln in text.splitlines()
                if ln.startswith("streamserve_prequential_metric{")
                and f'model="{name}"' in ln
                and 'metric="accuracy"' in ln
            )
            assert float(line.rsplit(" ", 1)[1]) == metrics[name]["accuracy"]
        # predictions and shadow predictions: the serving version's metrics
        wait_for(
            lambda: all(
                rt.registry.get_sample_value("streamserve_serving_version", {"model": name})
                == rt.store.serving_version(name)
                for name in ("lr", "nb")
            ),
            30,
            "the scorer to serve the newest versions",
        )
        events = _rows(uid, 50, labelled=False, start=10_000)
        produce_json(bootstrap, rt.topics["events"], events)
        ids = {e["event_id"] for e in events}
        decode = rt.serde.prediction_decoder().decode
        got: list[Prediction] = []
        for topic in ("predictions", "shadow-predictions"):
            got += [
                p
                for p in read_topic(
                    bootstrap,
                    rt.topics[topic],
                    decode=lambda m: decode(m.value(), None),
                    until=lambda rs: len({p.event_id for p in rs if p.event_id in ids}) >= len(ids),
                    timeout_s=60,
                )
                if p.event_id in ids
            ]
        by_model = {p.model: p for p in got}
        assert by_model["lr"].role == "champion" and by_model["nb"].role == "shadow"
        for p in got:
            meta = rt.store.get_meta(p.model, p.model_version)
            assert meta is not None and p.metrics == meta.metrics
