"""PyTorch module learners: factories from config, training settings, mini-batch
prequential learning, the matrix scorer, snapshots that cannot run code."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamserve.errors import ConfigError  # noqa: E402
from streamserve.learners.base import Learner  # noqa: E402
from streamserve.learners.catalogue import build_learner, load_learner  # noqa: E402
from streamserve.learners.exceptions import (  # noqa: E402
    LabelError,
    LearnerConfigError,
    PayloadError,
)
from streamserve.learners.spec import ModelSpec, Task  # noqa: E402
from streamserve.learners.torch_module import TorchModuleLearner  # noqa: E402
from streamserve.learners.torch_payload import TORCH_MODULE_FORMAT, pack, unpack  # noqa: E402
from streamserve.learners.torch_settings import TorchConfigError, torch_settings  # noqa: E402
from streamserve.records import FeatureFrame, Features, LabelValue  # noqa: E402
from streamserve.settings import settings_from_dict  # noqa: E402
from tests.torch_threads import one_torch_thread  # noqa: E402, F401 (autouse)
from tests.unit.learners_streams import baseline_mae, prequential, synthetic_stream  # noqa: E402

MLP = "tests.torch_models:mlp"
CLASSES = ["low", "mid", "high"]
FEATURES = {"numeric": 4, "categorical": 2, "buckets": 8, "spare_slots": 8}


def _spec(
    task: Task = Task.BINARY,
    learner: str = MLP,
    params: dict[str, Any] | None = None,
    **training: Any,
) -> ModelSpec:
    training.setdefault("features", FEATURES)
    if task is Task.MULTICLASS:
        training.setdefault("classes", CLASSES)
    return ModelSpec(f"t-{task}", task, learner, params or {}, torch=torch_settings(training))


def _learner(task: Task = Task.BINARY, **training: Any) -> TorchModuleLearner:
    learner = build_learner(_spec(task, **training))
    assert isinstance(learner, TorchModuleLearner)
    return learner


def _stream(task: Task, n: int, seed: int = 7) -> tuple[list[Features], list[LabelValue]]:
    rows = list(synthetic_stream(task, n, seed))
    return [x for x, _ in rows], [y for _, y in rows]


def _weights(learner: TorchModuleLearner) -> dict[str, Any]:
    return {k: v.clone() for k, v in learner.module.state_dict().items()}


def _same_weights(a: TorchModuleLearner, b: TorchModuleLearner) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# -- settings ------------------------------------------------------------------------------


def test_training_settings_have_defaults() -> None:
    s = torch_settings(None)
    assert (s.optimizer, s.lr, s.loss, s.batch_size, s.device, s.seed) == (
        "adam",
        0.01,
        None,
        16,
        "cpu",
        0,
    )
    assert s.clip_grad_norm is None and s.classes == () and not s.features.embeddings


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        ({"optimiser": "sgd"}, "optimiser", "unknown key"),
        ({"features": {"bucket": 8}}, "features.bucket", "unknown key"),
        ({"lr": 0}, "lr", "positive number"),
        ({"batch_size": 0}, "batch_size", "integer in"),
        ({"device": "gpu"}, "device", "cpu, cuda, cuda:N or auto"),
        ({"seed": -1}, "seed", "integer in"),
        ({"clip_grad_norm": "x"}, "clip_grad_norm", "positive number"),
        ({"optimizer_params": {"lr": 0.1}}, "optimizer_params.lr", "torch.lr"),
        ({"classes": ["a"]}, "classes", "two distinct"),
        ({"loss": "not a loss!"}, "loss", "torch.nn loss name"),
        ({"features": {"buckets": 1}}, "features.buckets", "integer in"),
        ({"features": {"numeric": ["a", "a"]}}, "features.numeric", "distinct"),
        ({"features": {"numeric": ["a"], "categorical": ["a"]}}, "features", "both"),
        ({"features": {"numeric": 0, "categorical": 0, "spare_slots": 0}}, "features", "no slot"),
    ],
)
def test_bad_training_settings_name_their_key(raw: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(TorchConfigError, match=reason) as e:
        torch_settings(raw)
    assert e.value.key == key


def _config(torch_key: dict[str, Any], learner: str = MLP, task: str = "binary") -> dict[str, Any]:
    return {"models": [{"name": "m", "task": task, "learner": learner, "torch": torch_key}]}


@pytest.mark.parametrize(
    ("torch_key", "key", "reason"),
    [
        ({"optimizr": "sgd"}, "models[0].torch.optimizr", "unknown key"),
        ({"optimizer": "adamm"}, "models[0].torch.optimizer", "no torch.optim class 'adamm'"),
        ({"loss": "hubber"}, "models[0].torch.loss", "no torch.nn loss 'hubber'"),
        ({"loss": "tests.torch_models:nothing"}, "models[0].torch.loss", "no attribute"),
        (
            {"optimizer": "sgd", "optimizer_params": {"momentum": -1}},
            "models[0].torch.optimizer_params",
            "cannot be built",
        ),
        ({"features": {"embeddings": True}}, "models[0].learner", "argument 'n_fields'"),
    ],
)
def test_settings_refuse_bad_torch_keys_at_start(
    torch_key: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason) as e:
        settings_from_dict(_config(torch_key))
    assert e.value.key == key


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error_and_auto_is_the_cpu() -> None:
    with pytest.raises(ConfigError, match="asks for a GPU, but torch sees none") as e:
        settings_from_dict(_config({"device": "cuda"}))
    assert e.value.key == "models[0].torch.device"
    learner = _learner(device="auto")
    assert next(learner.module.parameters()).device.type == "cpu"


def test_torch_key_on_a_river_learner_is_refused() -> None:
    with pytest.raises(ConfigError, match="apply to PyTorch module learners") as e:
        settings_from_dict(_config({}, learner="logistic_regression"))
    assert e.value.key == "models[0].torch"


@pytest.mark.parametrize(
    ("name", "cls"), [("SGD", "SGD"), ("adamw", "AdamW"), ("rmsprop", "RMSprop")]
)
def test_optimizer_by_name_case_insensitive(name: str, cls: str) -> None:
    learner = _learner(optimizer=name, optimizer_params={"weight_decay": 0.001})
    assert type(learner._optimizer).__name__ == cls
    assert learner._optimizer.param_groups[0]["weight_decay"] == 0.001


@pytest.mark.parametrize("loss", ["huber", "HuberLoss", "tests.torch_models:scaled_l1"])
def test_loss_by_name_or_import_path(loss: str) -> None:
    learner = _learner(Task.REGRESSION, loss=loss)
    xs, ys = _stream(Task.REGRESSION, 64)
    learner.learn_many(xs, ys)
    assert learner._n_steps == 4


# -- factories -----------------------------------------------------------------------------


def test_factory_gets_the_index_width_outputs_and_params() -> None:
    learner = _learner(Task.MULTICLASS)
    spec = _spec(Task.MULTICLASS, params={"hidden": [5, 3]})
    built = build_learner(spec)
    assert isinstance(built, TorchModuleLearner)
    first, last = built.module.layers[0], built.module.out
    width = 4 + 2 * 8 + 8  # numeric slots, one-hot buckets of 2 fields, spare slots
    assert (first.in_features, first.out_features) == (width, 5)
    assert last.out_features == 3
    assert learner.format == TORCH_MODULE_FORMAT
    as_learner: Learner = built
    assert isinstance(as_learner, Learner)


def test_a_factory_that_takes_n_inputs_needs_no_torch_key() -> None:
    spec = ModelSpec("m", Task.BINARY, MLP)
    assert isinstance(build_learner(spec), TorchModuleLearner)


@pytest.mark.parametrize(
    ("learner", "params", "reason"),
    [
        (MLP, {"n_inputs": 3}, "'n_inputs' is passed by streamserve"),
        (MLP, {"layers": 3}, "bad params.*hidden"),
        ("tests.torch_models:wrong_shape", {}, r"returned shape \(2, 2\).*\(2, 1\)"),
        ("tests.torch_models:not_a_module", {}, "returned a int, not a torch.nn.Module"),
    ],
)
def test_factory_mistakes_fail_at_build(learner: str, params: dict[str, Any], reason: str) -> None:
    with pytest.raises(LearnerConfigError, match=reason):
        build_learner(_spec(learner=learner, params=params))


def test_embedding_module_needs_embeddings_set_and_gets_fields_and_buckets() -> None:
    with pytest.raises(TorchConfigError, match=r"set torch\.features\.embeddings: true"):
        build_learner(_spec(learner="tests.torch_models:TinyEmbeddings"))
    learner = build_learner(
        _spec(
            learner="tests.torch_models:TinyEmbeddings", features={**FEATURES, "embeddings": True}
        )
    )
    assert isinstance(learner, TorchModuleLearner)
    module = learner.module
    assert module.dense.in_features == 4 + 8  # numbers and spares; strings go as ids
    assert module.table.num_embeddings == 2 * 8


def test_loss_that_does_not_fit_the_task_fails_at_build() -> None:
    with pytest.raises(LearnerConfigError, match="forward pass and loss"):
        build_learner(_spec(Task.MULTICLASS, loss="mse"))


# -- learning ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(Task))
def test_learns_each_task_above_chance(task: Task) -> None:
    metrics = prequential(_learner(task, batch_size=8), task, 400)
    if task is Task.BINARY:
        assert metrics["accuracy"] > 0.7  # balanced classes: chance is 0.5
    elif task is Task.MULTICLASS:
        assert metrics["accuracy"] > 0.6  # the majority class is about 45%
    else:
        assert metrics["mae"] < 0.7 * baseline_mae(400)


def test_steps_every_batch_size_examples_in_arrival_order() -> None:
    learner = _learner(batch_size=5)
    xs, ys = _stream(Task.BINARY, 12)
    fresh = _weights(learner)
    learner.prequential_many(xs[:4], ys[:4])
    assert learner._n_steps == 0 and learner._pending.n == 4
    assert _same_weights(learner, learner) and all(
        torch.equal(fresh[k], v) for k, v in learner.module.state_dict().items()
    )
    learner.prequential_many(xs[4:12], ys[4:12])
    assert learner._n_steps == 2 and learner._pending.n == 2 and learner.n_learned == 12


def test_prequential_many_is_prequential_one_in_order() -> None:
    xs, ys = _stream(Task.BINARY, 100)
    one, many = _learner(batch_size=7), _learner(batch_size=7)
    singles = [one.prequential_one(x, y) for x, y in zip(xs, ys, strict=True)]
    batched = many.prequential_many(xs[:33], ys[:33]) + many.prequential_many(xs[33:], ys[33:])
    for a, b in zip(singles, batched, strict=True):
        assert a.prediction == b.prediction
        assert a.score == pytest.approx(b.score, abs=1e-6)
    assert _same_weights(one, many)


def test_each_example_is_scored_before_it_is_learned() -> None:
    learner = _learner(batch_size=1)
    x, y = {"a": 1.0, "colour": "red"}, True
    before = learner.predict_one(x)
    assert learner.prequential_one(x, y) == before
    assert learner.predict_one(x) != before


def test_predict_many_equals_predict_one_and_changes_nothing() -> None:
    learner = _learner(Task.MULTICLASS)
    learner.learn_many(*_stream(Task.MULTICLASS, 50))
    state = learner.dumps()
    probes = _stream(Task.MULTICLASS, 20, seed=99)[0]
    many = learner.predict_many(probes)
    for x, s in zip(probes, many, strict=True):
        one = learner.predict_one(x)
        assert one.prediction == s.prediction
        assert one.probabilities == pytest.approx(s.probabilities, abs=1e-6)
    assert learner.dumps() == state
    assert learner.predict_many([]) == []


def test_unknown_class_is_refused_before_anything_is_learned() -> None:
    learner = _learner(Task.MULTICLASS)
    state = learner.dumps()
    with pytest.raises(LabelError, match="'zebra' is not one of the classes"):
        learner.prequential_many([{"a": 1.0}, {"a": 2.0}], ["low", "zebra"])
    assert learner.dumps() == state


def test_regression_is_learned_on_its_own_scale() -> None:
    learner = _learner(Task.REGRESSION, batch_size=4)
    xs, ys = _stream(Task.REGRESSION, 600)
    shifted = [1000.0 + 50.0 * float(y) for y in ys]
    scored = learner.prequential_many(xs, shifted)
    errors = [abs(float(s.score or 0.0) - y) for s, y in zip(scored, shifted, strict=True)]
    spread = sum(abs(y - 1000.0) for y in shifted) / len(shifted)
    assert sum(errors[-100:]) / 100 < 0.5 * spread


def test_clone_is_untrained_with_the_same_settings() -> None:
    learner = _learner(seed=3)
    probes = _stream(Task.BINARY, 10, seed=5)[0]
    fresh = learner.predict_many(probes)
    learner.learn_many(*_stream(Task.BINARY, 64))
    assert learner.predict_many(probes) != fresh
    clone = learner.clone()
    assert clone.n_learned == 0 and clone.predict_many(probes) == fresh
    assert _learner(seed=4).predict_many(probes) != fresh


def test_seeding_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    learner = _learner(params={"dropout": 0.5}, features=FEATURES)
    learner.learn_many(*_stream(Task.BINARY, 40))
    assert torch.equal(torch.rand(3), expected)


# -- feature index -------------------------------------------------------------------------


def test_slots_go_to_the_first_features_and_later_ones_to_spares() -> None:
    learner = _learner(features={"numeric": 2, "categorical": 1, "buckets": 4, "spare_slots": 4})
    width = learner._index.width
    learner.learn_many([{"a": 1.0, "c": "x"}, {"a": 2.0, "b": 5.0, "d": 3.0, "e": "y"}], [1, 0])
    index = learner._index
    assert index.numeric_names == ("a", "b") and index.field_names == ("c",)
    assert index.width == width == 2 + 4 + 4
    encoded = index.encode([{"a": 1.5, "b": None, "c": "x", "d": 3.0, "e": "y", "z": None}])
    row = encoded.dense[0]
    assert row[0] == 0.0  # mean of 1 and 2: standardized 0
    assert row[1] == 0.0  # missing: imputed with the mean
    assert row[2:6].sum() == 1.0 and row[2] == 0.0  # one bucket of c, not "missing"
    assert np.count_nonzero(row[6:]) == 2  # d and e=y in the spare slots
    assert abs(row[6:]).max() == pytest.approx(math.asinh(3.0))


def test_named_features_keep_their_slots() -> None:
    learner = _learner(features={"numeric": ["b", "a"], "categorical": ["c"], "buckets": 4})
    assert learner._index.numeric_names == ("b", "a")
    learner.learn_many([{"a": 1.0, "b": 2.0, "n": 9.0, "c": "q", "s": "t"}], [True])
    assert learner._index.numeric_names == ("b", "a")  # no auto slots: n is a spare


def test_statistics_change_at_each_step_together_with_the_weights() -> None:
    learner = _learner(
        batch_size=2, features={"numeric": ["a"], "categorical": 0, "spare_slots": 0}
    )

    def z(v: float) -> float:
        return float(learner._index.encode([{"a": v}]).dense[0, 0])

    learner.learn_one({"a": 3.0}, True)
    assert z(4.0) == 0.0  # no step yet: nothing known, the mean imputed
    learner.learn_one({"a": 7.0}, False)  # a step: the statistics of 3 and 7
    assert z(7.0) == pytest.approx(1.0)  # (7 - 5) / 2
    learner.learn_one({"a": 5.0}, True)
    assert z(7.0) == pytest.approx(1.0)  # pending: as it was
    learner.learn_one({"a": 100.0}, True)
    seen = [3.0, 7.0, 5.0, 100.0]
    assert z(7.0) == pytest.approx((7.0 - np.mean(seen)) / np.std(seen), rel=1e-6)
    assert z(1e9) == 10.0 and z(-1e9) == -10.0  # clipped
    assert z(math.inf) == 0.0 and z(math.nan) == 0.0  # invalid: imputed


def test_embedding_ids_number_buckets_from_one_and_zero_is_missing() -> None:
    spec = _spec(
        learner="tests.torch_models:TinyEmbeddings",
        features={
            "numeric": 1,
            "categorical": 2,
            "buckets": 5,
            "spare_slots": 0,
            "embeddings": True,
        },
    )
    learner = build_learner(spec)
    assert isinstance(learner, TorchModuleLearner)
    learner.learn_many([{"x": 1.0, "c": "a", "d": 7}], [True])
    encoded = learner._index.encode([{"c": "a", "d": 7}, {"c": "b"}, {}])
    assert encoded.dense.shape == (3, 1)
    assert encoded.ids.shape == (3, 2)
    assert (encoded.ids[:2, 0] >= 1).all() and (encoded.ids <= 4).all()
    assert encoded.ids[1, 1] == 0 and (encoded.ids[2] == 0).all()


# -- the matrix scorer ---------------------------------------------------------------------


@pytest.mark.parametrize("task", [Task.BINARY, Task.REGRESSION])
def test_matrix_scorer_equals_predict_many(task: Task) -> None:
    learner = _learner(task, features={"numeric": ["a", "b"], "categorical": 1, "spare_slots": 4})
    learner.learn_many(*_stream(task, 80))
    rng = random.Random(1)
    names = ("b", "a", "extra")
    values = np.array(
        [[rng.gauss(0, 1), rng.gauss(100, 20), rng.gauss(0, 3)] for _ in range(30)]
        + [[math.nan, math.inf, 1.0]]
    )
    frame = FeatureFrame(names, values)
    scorer = learner.matrix_scorer()
    assert scorer is not None
    columns = scorer.score_frame(frame)
    assert columns is not None and columns.kind == task.value
    records = learner.predict_many([frame.row(r) for r in range(len(frame))])
    for r, s in enumerate(records):
        assert columns.values[r] == pytest.approx(s.score, rel=1e-6, abs=1e-7)


def test_matrix_scorer_declines_string_features_and_multiclass() -> None:
    learner = _learner(features={"numeric": 2, "categorical": ["colour"]})
    scorer = learner.matrix_scorer()
    assert scorer is not None
    assert scorer.score_frame(FeatureFrame(("colour",), np.zeros((2, 1)))) is None
    # strings in a frame (a JSON batch): scored one by one, never read as missing
    rows = [{"a": 1.0, "b": 2.0, "colour": "red"}, {"a": 0.0, "b": 1.0, "colour": "blue"}]
    frame, _ = FeatureFrame.of_rows(rows)
    assert frame is not None and frame.strings
    assert scorer.score_frame(frame) is None
    assert _learner(Task.MULTICLASS).matrix_scorer() is None


# -- snapshots -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(Task))
def test_round_trip_mid_batch_trains_on_identically(task: Task) -> None:
    learner = _learner(task, batch_size=6, params={"dropout": 0.3})
    xs, ys = _stream(task, 200)
    learner.prequential_many(xs[:100], ys[:100])
    assert learner._pending.n == 100 % 6
    restored = load_learner(learner.spec, learner.format, learner.dumps())
    assert isinstance(restored, TorchModuleLearner)
    probes = _stream(task, 10, seed=3)[0]
    assert restored.predict_many(probes) == learner.predict_many(probes)
    a = learner.prequential_many(xs[100:], ys[100:])
    b = restored.prequential_many(xs[100:], ys[100:])
    assert a == b
    assert _same_weights(learner, restored)
    assert restored.dumps() == learner.dumps()


def test_payload_is_a_json_header_and_safetensors() -> None:
    learner = _learner(params={"hidden": [3]})
    learner.learn_many(*_stream(Task.BINARY, 20))
    header, body = unpack(learner.dumps(), TORCH_MODULE_FORMAT)
    assert header["learner"] == MLP and header["params"] == {"hidden": [3]}
    assert header["task"] == "binary" and header["n_learned"] == 20 and header["pending"] == 4
    assert header["optimizer"] == "Adam"
    assert header["features"]["numeric"][0][0] == "a"
    from safetensors.torch import load

    tensors = load(body)
    assert tensors["module.layers.0.weight"].shape == (3, 28)
    assert tensors["pending.dense"].shape == (4, 28)
    assert any(k.startswith("optim.") for k in tensors)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_a_forged_pickle_body_is_refused_without_running_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    learner = _learner()
    header, _ = unpack(learner.dumps(), TORCH_MODULE_FORMAT)
    for body in (_pickled(_Evil()), _torch_saved({"module.out.weight": _Evil()})):
        with pytest.raises(PayloadError, match="not a safetensors file"):
            load_learner(learner.spec, TORCH_MODULE_FORMAT, pack(header, body))
    assert "must never run" not in capsys.readouterr().out


def _pickled(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj)


def _torch_saved(obj: Any) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


def test_a_snapshot_naming_another_factory_is_refused_without_importing_it() -> None:
    learner = _learner()
    header, body = unpack(learner.dumps(), TORCH_MODULE_FORMAT)
    header["learner"] = "os:system"
    with pytest.raises(PayloadError, match=r"trained by learner 'os:system'.*refusing"):
        load_learner(learner.spec, TORCH_MODULE_FORMAT, pack(header, body))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"params": {"hidden": [99]}}, "built with params"),
        ({"task": "regression"}, "trained for task"),
        ({"classes": ["a", "b"]}, "classes"),
        ({"pending": 3}, "pending mini-batch"),
    ],
)
def test_a_snapshot_that_does_not_fit_the_config_is_refused(
    change: dict[str, Any], reason: str
) -> None:
    learner = _learner()
    header, body = unpack(learner.dumps(), TORCH_MODULE_FORMAT)
    header.update(change)
    with pytest.raises(PayloadError, match=reason):
        load_learner(learner.spec, TORCH_MODULE_FORMAT, pack(header, body))


def test_a_changed_feature_layout_or_module_is_refused() -> None:
    learner = _learner()
    payload = learner.dumps()
    wider = _spec(features={**FEATURES, "spare_slots": 16})
    with pytest.raises(PayloadError, match="feature layout"):
        load_learner(wider, TORCH_MODULE_FORMAT, payload)
    with pytest.raises(PayloadError, match="trained by learner"):
        load_learner(_spec(learner="tests.torch_models:logistic"), TORCH_MODULE_FORMAT, payload)
    with pytest.raises(PayloadError, match="holds a PyTorch module"):
        load_learner(
            ModelSpec("m", Task.BINARY, "logistic_regression"), TORCH_MODULE_FORMAT, payload
        )
    with pytest.raises(PayloadError, match=r"truncated|header claims"):
        load_learner(learner.spec, TORCH_MODULE_FORMAT, payload[:3])


def test_another_optimizer_in_config_keeps_the_weights_and_starts_it_afresh() -> None:
    learner = _learner()
    learner.learn_many(*_stream(Task.BINARY, 64))
    restored = load_learner(_spec(optimizer="sgd"), TORCH_MODULE_FORMAT, learner.dumps())
    assert isinstance(restored, TorchModuleLearner)
    assert _same_weights(learner, restored)
    assert type(restored._optimizer).__name__ == "SGD"
    assert not restored._optimizer.state


# -- wide_deep -----------------------------------------------------------------------------


def _clicks(n: int, seed: int = 11) -> tuple[list[Features], list[LabelValue]]:
    """A click-through-style stream: a click depends on the pair (site, device), not on
    either alone (an XOR of two string features), and a little on one number."""
    rng = random.Random(seed)
    xs: list[Features] = []
    ys: list[LabelValue] = []
    for _ in range(n):
        site, device = rng.choice("ABCD"), rng.choice(["ios", "android", "web"])
        age = rng.gauss(35, 10)
        xor = (site in "AB") != (device == "web")
        xs.append({"site": site, "device": device, "age": age, "hour": rng.randrange(24)})
        ys.append(rng.random() < (0.85 if xor else 0.15) + (0.05 if age > 45 else 0.0))
    return xs, ys


def test_wide_deep_learns_crosses_of_string_features() -> None:
    spec = ModelSpec(
        "ctr",
        Task.BINARY,
        "wide_deep",
        {"hidden": [16], "embedding_dim": 4},
        torch=torch_settings(
            {"batch_size": 8, "features": {"numeric": ["age"], "categorical": ["site", "device"]}}
        ),
    )
    learner = build_learner(spec)
    assert isinstance(learner, TorchModuleLearner)
    xs, ys = _clicks(3000)
    scored = learner.prequential_many(xs, ys)
    late = [s.prediction == y for s, y in zip(scored[-1000:], ys[-1000:], strict=True)]
    assert sum(late) / len(late) > 0.78  # the best possible is about 0.85
    restored = load_learner(spec, learner.format, learner.dumps())
    assert restored.predict_many(xs[:20]) == learner.predict_many(xs[:20])
