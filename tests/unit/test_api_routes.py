"""The API's routes over models in memory: answers equal the learners' own scores, and
bad input gets a 4xx naming what is wrong."""

from __future__ import annotations

import math
from typing import Any

import pytest
from starlette.testclient import TestClient

from streamserve.api.http import Limits
from streamserve.learners.base import Scored
from tests.unit.api_app import make_app

ROWS = [{"x0": 0.1, "x1": 0.2}, {"x0": 0.9, "x1": 0.8}, {"x0": 0.5, "x1": 0.49}]


@pytest.fixture
def app() -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app[0])


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def _expected(app: Any, model: str, rows: list[dict[str, Any]]) -> list[Scored]:
    learner = app[1][model].holder.current.model
    return [learner.predict_one(dict(x)) for x in rows]


@pytest.mark.parametrize("model", ["default", "tree", "kinds", "amount"])
def test_tf_predict_equals_the_learner(app: Any, client: TestClient, model: str) -> None:
    r = client.post(f"/v1/models/{model}:predict", json={"instances": ROWS})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    for p, want in zip(got, _expected(app, model, ROWS), strict=True):
        assert p["model_version"] == 3
        if isinstance(want.prediction, float):
            assert _close(p["prediction"], want.prediction)
        else:
            assert p["prediction"] == want.prediction
        assert _close(p["score"], want.score)
        if want.probabilities is None:
            assert "probabilities" not in p
        else:
            assert p["probabilities"].keys() == want.probabilities.keys()
            for k, v in want.probabilities.items():
                assert _close(p["probabilities"][k], v)


@pytest.mark.parametrize("model", ["default", "tree", "kinds", "amount"])
def test_v2_infer_equals_the_learner(app: Any, client: TestClient, model: str) -> None:
    inputs = [
        {
            "name": name,
            "shape": [len(ROWS), 1],
            "datatype": "FP64",
            "data": [[x[name]] for x in ROWS],
        }
        for name in ("x0", "x1")
    ]
    r = client.post(f"/v2/models/{model}/infer", json={"id": "r1", "inputs": inputs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == model and body["model_version"] == "3" and body["id"] == "r1"
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    for i, want in enumerate(_expected(app, model, ROWS)):
        if isinstance(want.prediction, float):
            assert _close(outputs["prediction"][i], want.prediction)
        else:
            assert outputs["prediction"][i] == want.prediction
        assert _close(outputs["score"][i], want.score)
        for k, v in (want.probabilities or {}).items():
            assert _close(outputs[f"probability_{k}"][i], v)


def test_event_instances_carry_their_ids(client: TestClient) -> None:
    instances = [{"event_id": "e-1", "features": ROWS[0], "ts": 5}, ROWS[1]]
    r = client.post("/v1/models/default:predict", json={"instances": instances})
    assert r.status_code == 200
    got = r.json()["predictions"]
    assert got[0]["event_id"] == "e-1" and "event_id" not in got[1]


def test_v2_mixed_types_and_event_ids(app: Any, client: TestClient) -> None:
    inputs = [
        {"name": "event_id", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
        {"name": "x0", "shape": [2], "datatype": "FP32", "data": [0.25, None]},
        {"name": "x1", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        {"name": "country", "shape": [2], "datatype": "BYTES", "data": ["FR", "DE"]},
    ]
    r = client.post(
        "/v2/models/default/infer", json={"inputs": inputs, "outputs": [{"name": "score"}]}
    )
    assert r.status_code == 200, r.text
    (score,) = r.json()["outputs"]
    rows = [{"x0": 0.25, "x1": 1, "country": "FR"}, {"x0": None, "x1": 0, "country": "DE"}]
    for got, want in zip(score["data"], _expected(app, "default", rows), strict=True):
        assert _close(got, want.score)


def test_a_given_version_is_loaded_from_the_store(app: Any, client: TestClient) -> None:
    store = app[2]
    for version in (1, 2, 1):
        r = client.post(f"/v1/models/default/versions/{version}:predict", json={"instances": ROWS})
        assert r.status_code == 200, r.text
        blob = store.get_blob("default", version)
        from streamserve.learners.catalogue import load_learner

        meta, payload = store.codec.decode(blob)
        learner = load_learner(app[1]["default"].spec, meta.format, payload)
        for p, x in zip(r.json()["predictions"], ROWS, strict=True):
            assert p["model_version"] == version
            assert _close(p["score"], learner.predict_one(dict(x)).score)
    r = client.post(
        "/v2/models/default/versions/0/infer",
        json={"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
    )
    assert r.status_code == 200 and r.json()["model_version"] == "0"
    r = client.post("/v1/models/default/versions/9:predict", json={"instances": ROWS})
    assert r.status_code == 404 and "no version 9" in r.json()["error"]


def test_a_forged_version_is_refused(app: Any, client: TestClient) -> None:
    store = app[2]
    blob = bytearray(store.blobs[("default", 2)])
    blob[-1] ^= 1
    store.blobs[("default", 2)] = bytes(blob)
    r = client.post("/v1/models/default/versions/2:predict", json={"instances": ROWS})
    assert r.status_code == 503 and "cannot be loaded" in r.json()["error"]


def test_status_metadata_and_health(client: TestClient) -> None:
    r = client.get("/v1/models/default")
    assert r.json()["model_version_status"][0] == {
        "version": "3",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    assert client.get("/v1/models/default/versions/2").status_code == 200
    assert client.get("/v1/models/default/versions/7").status_code == 404
    meta = client.get("/v1/models/default/metadata").json()
    assert (
        meta["model_spec"]["version"] == "3"
        and meta["metadata"]["snapshot"]["examples_seen"] == 300
    )
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["models"]["default"] == 3
    assert client.get("/v2/models/kinds/ready").status_code == 200
    assert (
        client.get("/v2/models/kinds").json()["platform"]
        == "streamserve/multiclass/softmax_regression"
    )
    assert client.get("/v2").json()["name"] == "streamserve"


def test_not_ready_is_a_400(app: Any, client: TestClient) -> None:
    app[1]["tree"].ready = lambda: False
    r = client.get("/v2/health/ready")
    assert r.status_code == 400 and "tree" in r.json()["error"]
    assert client.get("/v2/models/tree/ready").status_code == 400
    assert client.get("/v2/models/default/ready").status_code == 200


BAD: list[tuple[str, Any, int, str]] = [
    ("/v1/models/default:predict", b"{", 400, "not valid JSON"),
    ("/v1/models/default:predict", b"", 400, "no body"),
    ("/v1/models/default:predict", [], 400, "JSON object"),
    ("/v1/models/default:predict", {"instances": []}, 400, "empty"),
    ("/v1/models/default:predict", {"instances": "x"}, 400, "'instances' must be"),
    ("/v1/models/default:predict", {"instances": [1]}, 400, "instances[0] must be an object"),
    ("/v1/models/default:predict", {"instances": [{"a": {}}]}, 400, "feature 'a'"),
    (
        "/v1/models/default:predict",
        {"instances": [{"features": {}, "event_id": ""}]},
        400,
        "event_id",
    ),
    ("/v1/models/default:predict", {"instances": [{"features": {}, "ts": "x"}]}, 400, "ts"),
    ("/v1/models/default:predict", {"inputs": []}, 400, "unknown field 'inputs'"),
    ("/v1/models/nope:predict", {"instances": [{}]}, 404, "no model named 'nope'"),
    (
        "/v1/models/default/versions/99999999999999999999:predict",
        {"instances": [{}]},
        400,
        "version",
    ),
    ("/v2/models/default/infer", {"inputs": []}, 400, "non-empty list"),
    ("/v2/models/default/infer", {"inputs": [{"name": "a"}]}, 400, "datatype"),
    (
        "/v2/models/default/infer",
        {"inputs": [{"name": "a", "datatype": "FP64", "shape": [2], "data": [1]}]},
        400,
        "shape says 2",
    ),
    (
        "/v2/models/default/infer",
        {"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]},
        400,
        "[n, 1]",
    ),
    (
        "/v2/models/default/infer",
        {"inputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [1]}]},
        400,
        "booleans",
    ),
    (
        "/v2/models/default/infer",
        {"inputs": [{"name": "a", "datatype": "INT8", "shape": [1], "data": [1.5]}]},
        400,
        "integers",
    ),
    (
        "/v2/models/default/infer",
        {
            "inputs": [
                {"name": "a", "datatype": "FP64", "shape": [1], "data": [1]},
                {"name": "a", "datatype": "FP64", "shape": [1], "data": [1]},
            ]
        },
        400,
        "twice",
    ),
    (
        "/v2/models/default/infer",
        {
            "inputs": [
                {"name": "a", "datatype": "FP64", "shape": [1], "data": [1]},
                {"name": "b", "datatype": "FP64", "shape": [2], "data": [1, 2]},
            ]
        },
        400,
        "rows",
    ),
    (
        "/v2/models/default/infer",
        {
            "inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}],
            "outputs": [{"name": "nope"}],
        },
        400,
        "no output named",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "says"), BAD)
def test_bad_input_is_a_4xx_naming_the_problem(
    client: TestClient, path: str, body: Any, status: int, says: str
) -> None:
    r = client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and "no route" in r.json()["error"]
    r = client.get("/v1/models/default:predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_limits() -> None:
    app, _, _ = make_app(limits=Limits(max_body_bytes=200, max_instances=2, timeout_s=5.0))
    client = TestClient(app)
    r = client.post("/v1/models/default:predict", json={"instances": [ROWS[0]] * 3})
    assert r.status_code == 413 and "api.max_instances" in r.json()["error"]
    r = client.post("/v1/models/default:predict", json={"instances": [{"x" * 300: 1}]})
    assert r.status_code == 413 and "api.max_body_bytes" in r.json()["error"]
    big = {"inputs": [{"name": "a", "datatype": "FP64", "shape": [5], "data": [1] * 5}]}
    r = client.post("/v2/models/default/infer", json=big)
    assert r.status_code == 413


def test_openapi_describes_every_route(app: Any, client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    from starlette.routing import Route

    described = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    for route in app[0].routes:
        assert isinstance(route, Route)
        path = route.path.replace(":name}", "}")
        assert any(p == path for p, _ in described), path
    assert ("/v1/models/{model}:feedback", "POST") in described
    assert doc["paths"]["/v1/models/{model}:feedback"]["post"]["security"] == [{"bearer": []}]


def test_requests_and_batches_are_counted() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    app, _, _ = make_app(registry=registry)
    client = TestClient(app)
    for _ in range(3):
        client.post("/v1/models/default:predict", json={"instances": ROWS})
    client.post("/v1/models/default:predict", json={"instances": []})
    client.get("/nope")
    client.get("/v1/models/default:predict")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("streamserve_api_requests_total", route="tf_predict", status="200") == 3
    assert sample("streamserve_api_requests_total", route="tf_predict", status="400") == 1
    assert sample("streamserve_api_requests_total", route="not_found", status="404") == 1
    assert sample("streamserve_api_requests_total", route="method_not_allowed", status="405") == 1
    assert sample("streamserve_api_request_seconds_count", route="tf_predict") == 4
    assert sample("streamserve_api_batch_instances_sum", model="default") == 3 * len(ROWS)


@pytest.mark.parametrize("model", ["default", "kinds", "amount"])
def test_rows_of_several_shapes_in_one_batch(app: Any, client: TestClient, model: str) -> None:
    """Rows with strings, missing names, nulls and booleans: the compiled frame takes
    those it can, the rest are scored per record; every answer equals the learner's."""
    rows: list[dict[str, Any]] = [
        {"x0": 0.2, "x1": 0.9, "country": "FR"},
        {"x0": 0.7, "x1": None, "country": "DE"},
        {"x0": 0.1},
        {"x0": True, "x1": 0.5, "country": "FR"},
        {"x1": 0.3, "country": None, "x0": 0.4},
    ]
    r = client.post(f"/v1/models/{model}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    for p, want in zip(r.json()["predictions"], _expected(app, model, rows), strict=True):
        assert _close(p["score"], want.score)
        for k, v in (want.probabilities or {}).items():
            assert _close(p["probabilities"][k], v)
