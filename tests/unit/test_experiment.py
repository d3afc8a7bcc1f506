"""Champion and shadows, or an A/B split by a hash of the key."""

from __future__ import annotations

import pytest

from streamserve.errors import ConfigError
from streamserve.serving.experiment import Experiment, arm_of

MODELS = ["lr", "tree", "nb"]


def test_no_experiment_sends_every_model_to_predictions() -> None:
    e = Experiment()
    assert not e.active and e.role("lr") is None


def test_a_champion_and_its_shadows() -> None:
    e = Experiment.from_record({"champion": "tree"}, MODELS)
    assert e.active and e.role("tree") == "champion" and e.role("lr") == "shadow"


def test_a_split_by_key_hash_follows_the_weights_and_is_stable() -> None:
    e = Experiment.from_record({"split": {"lr": 9, "tree": 1}}, MODELS)
    names, bounds = e.arms()
    arms = [arm_of(f"key-{i}".encode(), names, bounds) for i in range(20_000)]
    share = arms.count("tree") / len(arms)
    assert 0.08 < share < 0.12
    assert arms == [arm_of(f"key-{i}".encode(), names, bounds) for i in range(20_000)]
    assert arm_of(None, names, bounds) == "lr"


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"champion": "nope"}, "serving.champion"),
        ({"split": {"lr": 0}}, "serving.split.lr"),
        ({"split": {"other": 1}}, "serving.split.other"),
        ({"champion": "lr", "split": {"tree": 1}}, "serving"),
    ],
)
def test_a_bad_experiment_names_the_key(record: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        Experiment.from_record(record, MODELS)
    assert error.value.key == key
