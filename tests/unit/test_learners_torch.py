"""TorchLearner: learning, the torch-state/1 payload, weights_only loading, validation."""

from __future__ import annotations

import io
import json
import math
import zlib
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from streamserve.learners.base import Learner  # noqa: E402
from streamserve.learners.exceptions import (  # noqa: E402
    LabelError,
    LearnerConfigError,
    PayloadError,
)
from streamserve.learners.feature_hashing import FeatureHasher  # noqa: E402
from streamserve.learners.spec import ModelSpec, Task  # noqa: E402
from streamserve.learners.torch_learner import TorchLearner, load_torch  # noqa: E402
from streamserve.learners.torch_payload import TORCH_FORMAT, pack, unpack  # noqa: E402
from tests.unit.learners_streams import prequential, synthetic_stream  # noqa: E402

CLASSES = ["low", "mid", "high"]
SPECS = {
    Task.BINARY: ModelSpec("t-bin", Task.BINARY, "torch_mlp"),
    Task.MULTICLASS: ModelSpec("t-multi", Task.MULTICLASS, "torch_mlp", {"classes": CLASSES}),
    Task.REGRESSION: ModelSpec("t-reg", Task.REGRESSION, "torch_mlp"),
}


def _learner(task: Task, **params: Any) -> TorchLearner:
    if task is Task.MULTICLASS:
        params.setdefault("classes", CLASSES)
    params.setdefault("n_features", 256)
    params.setdefault("hidden", (16,))
    return TorchLearner(SPECS[task], **params)


def _train(learner: TorchLearner, task: Task, n: int = 150, seed: int = 7) -> TorchLearner:
    for x, y in synthetic_stream(task, n, seed):
        learner.learn_one(x, y)
    return learner


def _probes(task: Task) -> list[dict[str, Any]]:
    return [x for x, _ in synthetic_stream(task, 20, seed=99)]


def test_is_a_learner_with_the_torch_format() -> None:
    learner = _learner(Task.BINARY)
    as_learner: Learner = learner  # checked statically by mypy too
    assert isinstance(as_learner, Learner)
    assert learner.format == TORCH_FORMAT == "torch-state/1"


def test_binary_learns_and_scores_in_shape() -> None:
    learner = _learner(Task.BINARY)
    correct = 0
    for x, y in synthetic_stream(Task.BINARY, 300):
        scored = learner.predict_one(x)
        correct += scored.prediction == y
        learner.learn_one(x, y)
        assert scored.probabilities is not None
        assert set(scored.probabilities) == {"true", "false"}
        assert scored.score == scored.probabilities["true"]
        assert scored.prediction is (scored.score >= 0.5)
    assert correct / 300 > 0.75


def test_multiclass_scores_over_the_classes() -> None:
    learner = _train(_learner(Task.MULTICLASS), Task.MULTICLASS, 300)
    scored = learner.predict_one(_probes(Task.MULTICLASS)[0])
    assert scored.probabilities is not None
    assert list(scored.probabilities) == CLASSES
    assert math.isclose(sum(scored.probabilities.values()), 1.0, rel_tol=1e-5)
    assert scored.prediction == max(scored.probabilities, key=scored.probabilities.__getitem__)
    assert scored.score == max(scored.probabilities.values())


def test_regression_target_is_learned_on_its_own_scale() -> None:
    learner = _learner(Task.REGRESSION)
    shifted = [(x, 1000.0 + 50.0 * float(y)) for x, y in synthetic_stream(Task.REGRESSION, 400)]
    errors = []
    for x, y in shifted:
        scored = learner.predict_one(x)
        assert scored.probabilities is None
        assert scored.prediction == scored.score
        assert scored.score is not None
        errors.append(abs(scored.score - y))
        learner.learn_one(x, y)
    spread = sum(abs(y - 1000.0) for _, y in shifted) / len(shifted)
    assert sum(errors[-100:]) / 100 < 0.5 * spread


def test_round_trip_keeps_the_count_of_examples_learned() -> None:
    """Predictions and further learning after a round trip: the learner contract."""
    learner = _train(_learner(Task.BINARY), Task.BINARY)
    restored = load_torch(SPECS[Task.BINARY], learner.dumps())
    assert restored.n_learned == learner.n_learned == 150


def test_payload_is_a_json_header_and_a_weights_only_torch_body() -> None:
    learner = _train(_learner(Task.MULTICLASS, seed=5), Task.MULTICLASS)
    payload = learner.dumps()
    length = int.from_bytes(payload[:4], "big")
    header = json.loads(payload[4 : 4 + length])
    assert header["format"] == TORCH_FORMAT
    assert header["task"] == "multiclass"
    assert header["optimizer"] == "adam"
    assert header["hyperparameters"] == {
        "hidden": [16],
        "lr": 0.01,
        "n_features": 256,
        "classes": CLASSES,
        "seed": 5,
    }
    assert header["shapes"]["0.weight"] == [16, 256]
    assert header["preprocess"]["numeric"]["a"][0] == 150
    body = torch.load(io.BytesIO(payload[4 + length :]), weights_only=True)
    assert set(body) == {"model", "optim"}
    assert all(isinstance(t, torch.Tensor) for t in body["model"].values())


def test_torch_save_of_arbitrary_objects_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    learner = _learner(Task.BINARY)
    header, _ = unpack(learner.dumps())
    evil = io.BytesIO()
    torch.save({"model": {}, "optim": {}, "x": _Evil()}, evil)
    with pytest.raises(PayloadError, match="cannot be restored"):
        load_torch(SPECS[Task.BINARY], pack(header, evil.getvalue()))
    assert "must never run" not in capsys.readouterr().out


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_clone_is_untrained_with_the_same_hyperparameters() -> None:
    learner = _learner(Task.BINARY, seed=3, lr=0.02)
    fresh = learner.predict_many(_probes(Task.BINARY))
    _train(learner, Task.BINARY)
    assert learner.predict_many(_probes(Task.BINARY)) != fresh
    clone = learner.clone()
    assert clone.n_learned == 0
    assert clone.hyperparameters == learner.hyperparameters
    assert clone.predict_many(_probes(Task.BINARY)) == fresh


def test_seed_makes_weights_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = _learner(Task.BINARY, seed=1)
    assert torch.equal(torch.rand(3), expected)
    b = _learner(Task.BINARY, seed=1)
    c = _learner(Task.BINARY, seed=2)
    probes = _probes(Task.BINARY)
    assert a.predict_many(probes) == b.predict_many(probes)
    assert a.predict_many(probes) != c.predict_many(probes)


def test_label_outside_the_classes_is_a_label_error() -> None:
    learner = _learner(Task.MULTICLASS)
    with pytest.raises(LabelError, match="'zebra' is not one of the classes"):
        learner.learn_one({"a": 1.0}, "zebra")
    assert learner.n_learned == 0


def test_numeric_classes_are_coerced_like_labels() -> None:
    spec = ModelSpec("t", Task.MULTICLASS, "torch_mlp")
    learner = TorchLearner(spec, classes=[1, 2, 3.0], n_features=16)  # type: ignore[list-item]
    assert learner.hyperparameters["classes"] == ["1", "2", "3"]
    learner.learn_one({"a": 1.0}, "3")


@pytest.mark.parametrize(
    ("task", "params", "message"),
    [
        (Task.MULTICLASS, {}, "needs classes"),
        (Task.MULTICLASS, {"classes": ["a"]}, "at least two distinct"),
        (Task.MULTICLASS, {"classes": ["a", "a"]}, "at least two distinct"),
        (Task.BINARY, {"classes": ["a", "b"]}, "multiclass' only"),
        (Task.BINARY, {"hidden": 32}, "list of layer sizes"),
        (Task.BINARY, {"hidden": [0]}, "positive integer"),
        (Task.BINARY, {"lr": 0.0}, "lr must be a positive number"),
        (Task.BINARY, {"lr": math.nan}, "lr must be a positive number"),
        (Task.BINARY, {"n_features": 0}, "n_features must be a positive integer"),
        (Task.BINARY, {"n_features": 1 << 30}, "at most"),
        (Task.BINARY, {"seed": "x"}, "seed must be an integer"),
        (Task.BINARY, {"seed": -1}, "seed must be an integer"),
    ],
)
def test_bad_hyperparameters_are_explained(
    task: Task, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(LearnerConfigError, match=message):
        TorchLearner(SPECS[task], **params)


def test_linear_model_without_hidden_layers_learns() -> None:
    learner = _learner(Task.BINARY, hidden=())
    assert learner.hyperparameters["hidden"] == []
    metrics = prequential(learner, Task.BINARY, 300)
    assert metrics["accuracy"] > 0.75


def test_without_preprocess_features_are_used_as_given() -> None:
    spec = ModelSpec("t-raw", Task.BINARY, "torch_mlp", preprocess=False)
    learner = TorchLearner(spec, n_features=64)
    for x, y in synthetic_stream(Task.BINARY, 50):
        learner.learn_one({**x, "a": (float(x["a"]) - 100.0) / 20.0, "bad": math.nan}, y)  # type: ignore[arg-type]
    restored = load_torch(spec, learner.dumps())
    probes = _probes(Task.BINARY)
    assert restored.predict_many(probes) == learner.predict_many(probes)
    with pytest.raises(PayloadError, match="preprocess"):
        load_torch(SPECS[Task.BINARY], learner.dumps())


def test_load_rejects_mismatches_and_garbage() -> None:
    payload = _train(_learner(Task.BINARY), Task.BINARY, 10).dumps()
    with pytest.raises(PayloadError, match="trained for task 'binary'"):
        load_torch(SPECS[Task.REGRESSION], payload)
    with pytest.raises(PayloadError, match="truncated"):
        load_torch(SPECS[Task.BINARY], b"\x00")
    with pytest.raises(PayloadError, match="header claims"):
        load_torch(SPECS[Task.BINARY], payload[:10])
    with pytest.raises(PayloadError, match="cannot be restored"):
        load_torch(SPECS[Task.BINARY], payload[:-20])
    header, body = unpack(payload)
    header["shapes"]["0.weight"] = [1, 1]
    with pytest.raises(PayloadError, match="shapes"):
        load_torch(SPECS[Task.BINARY], pack(header, body))
    header, body = unpack(payload)
    header["hyperparameters"]["lr"] = -1
    with pytest.raises(PayloadError, match="lr must be a positive number"):
        load_torch(SPECS[Task.BINARY], pack(header, body))
    with pytest.raises(PayloadError, match="format"):
        unpack(pack({"format": "river-pickle/1"}, b""))


def test_feature_hashing_is_stable_crc32() -> None:
    hasher = FeatureHasher(1000)
    h = zlib.crc32(b"colour=red")
    assert hasher.slot("colour=red") == (h % 1000, -1.0 if h & 0x80000000 else 1.0)
    slots, values = hasher.hash_features({"colour=red": 2.0, "a": 0.5})
    assert slots[0] == h % 1000
    assert abs(values[0]) == 2.0


def test_feature_hash_cache_is_bounded() -> None:
    hasher = FeatureHasher(64, cache_size=10)
    for i in range(100):
        hasher.slot(f"user={i}")
    assert len(hasher._cache) <= 10
    assert hasher.slot("user=5") == FeatureHasher(64).slot("user=5")
