from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.errors import ConfigError
from streamserve.learners.spec import Task
from streamserve.settings import Secret, load_settings, settings_from_dict, signing_keys


def test_defaults_serve_one_binary_logistic_regression() -> None:
    s = settings_from_dict({})
    assert [m.name for m in s.models] == ["default"]
    assert s.models[0].task is Task.BINARY
    assert s.models[0].learner == "logistic_regression"
    assert s.http.host == "127.0.0.1"
    assert s.serde.output_format == "avro"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"kafka": {"bootstrap": "x"}}, "kafka.bootstrap"),
        ({"scorer": {"batch_size": 0}}, "scorer.batch_size"),
        ({"scorer": {"batch_size": "10"}}, "scorer.batch_size"),
        ({"serde": {"output_format": "xml"}}, "serde.output_format"),
        ({"http": {"port": 70000}}, "http.port"),
        ({"redis": {"url": "http://x"}}, "redis.url"),
        ({"redis": {"url": "unix:///run/redis.sock", "cluster": True}}, "redis.cluster"),
        ({"redis": {"cluster": "yes"}}, "redis.cluster"),
        ({"kafka": {"instance_id": "pod 0"}}, "kafka.instance_id"),
        ({"kafka": {"instance_id": ""}}, "kafka.instance_id"),
        ({"kafka": {"client": {"bootstrap.servers": "x"}}}, "kafka.client.bootstrap.servers"),
        ({"kafka": {"client": {"sasl": {"nested": 1}}}}, "kafka.client.sasl"),
        ({"models": []}, "models"),
        ({"models": [{"name": "m", "task": "binary"}]}, "models[0].learner"),
        ({"models": [{"name": "m", "task": "ranking", "learner": "x"}]}, "models[0].task"),
        (
            {"models": [{"name": "m", "task": "binary", "learner": "no_such_model"}]},
            "models[0].learner",
        ),
        (
            {
                "models": [
                    {"name": "m", "task": "binary", "learner": "logistic_regression", "colour": 1}
                ]
            },
            "models[0].colour",
        ),
        (
            {
                "models": [
                    {"name": "m", "task": "binary", "learner": "logistic_regression"},
                    {"name": "m", "task": "binary", "learner": "logistic_regression"},
                ]
            },
            "models[1].name",
        ),
        ({"unknown_section": {}}, "unknown_section"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    assert info.value.key == key
    assert key in str(info.value)


def test_unknown_learner_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"models": [{"name": "m", "task": "binary", "learner": "nope"}]})
    assert "logistic_regression" in info.value.reason


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka: {bootstrap_servers: file:9092, topic_prefix: p.}\nhttp: {port: 1}\n")
    env = {"STREAMSERVE_BOOTSTRAP_SERVERS": "env:9092", "STREAMSERVE__HTTP__PORT": "2"}
    s = load_settings(cfg, env=env)
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.kafka.topic_prefix == "p."
    assert s.http.port == 2
    s = load_settings(cfg, env=env, overrides={"kafka": {"bootstrap_servers": "flag:9092"}})
    assert s.kafka.bootstrap_servers == "flag:9092"


def test_nested_settings_come_from_the_environment() -> None:
    env = {
        "STREAMSERVE__LEARNER__BREAKER__ENABLED": "true",
        "STREAMSERVE__LEARNER__ROLLBACK__MIN_EXAMPLES": "750",
        "STREAMSERVE__SCORER__INPUT_DRIFT__DETECTOR": "kswin",
    }
    s = load_settings(None, env=env)
    assert s.learner.breaker.enabled is True
    assert s.learner.rollback.min_examples == 750
    assert s.scorer.input_drift.detector == "kswin"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("STREAMSERVE__KAFKA__CLIENT__ACKS", "STREAMSERVE__KAFKA__CLIENT__ACKS"),
        ("STREAMSERVE__MODELS__NAME", "STREAMSERVE__MODELS__NAME"),
        ("STREAMSERVE__LEARNER__BREAKER__NOPE", "learner.breaker.nope"),
        ("STREAMSERVE__EXPERIMENT__CHAMPION", "experiment"),
        ("STREAMSERVE__", "STREAMSERVE__"),
    ],
)
def test_an_environment_variable_that_names_no_setting_stops_it(name: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={name: "1"})
    assert info.value.key == key


@pytest.mark.parametrize("key", ["experiment", "answers", "auto_promote"])
def test_settings_built_from_other_keys_are_refused_in_the_file(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({key: {}})
    assert info.value.key == key and "unknown key" in info.value.reason


def test_config_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, env={})


def test_secrets_never_show(tmp_path: Path) -> None:
    s = settings_from_dict(
        {"redis": {"password": "hunter2-very-secret"}, "snapshots": {"signing_key": "k" * 32}}
    )
    assert isinstance(s.redis.password, Secret)
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.redis)
    assert s.redis.password.get() == "hunter2-very-secret"


def test_signing_keys_from_value_and_rotation_file(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys"
    keyfile.write_text("new-key-0123456789abcdef\nold-key-0123456789abcdef\n")
    s = settings_from_dict({"snapshots": {"signing_key_file": str(keyfile)}})
    assert signing_keys(s) == [b"new-key-0123456789abcdef", b"old-key-0123456789abcdef"]
    with pytest.raises(ConfigError, match="16 characters"):
        signing_keys(settings_from_dict({"snapshots": {"signing_key": "short"}}))
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"snapshots": {"signing_key_file": str(tmp_path / "none")}})
    assert info.value.key == "snapshots.signing_key_file"


def test_kafka_passthrough_values_become_strings() -> None:
    s = settings_from_dict(
        {
            "kafka": {
                "client": {
                    "security.protocol": "SASL_SSL",
                    "enable.ssl.certificate.verification": False,
                    "socket.timeout.ms": 1000,
                }
            }
        }
    )
    assert dict(s.kafka.client) == {
        "security.protocol": "SASL_SSL",
        "enable.ssl.certificate.verification": "false",
        "socket.timeout.ms": "1000",
    }


def _model(**extra: object) -> dict[str, object]:
    return {"name": "m", "task": "binary", "learner": "logistic_regression", **extra}


def test_drift_defaults_are_adwin_and_challenger() -> None:
    s = settings_from_dict({"models": [_model()]})
    d = s.drift_of("m")
    assert (d.enabled, d.detector.name, d.retrain.policy.value) == (True, "adwin", "challenger")
    assert s.drift_of("other").model == "other"  # defaults for a model without the keys
    assert s.scorer.input_drift.enabled and s.scorer.input_drift.detector == "adwin"


def test_drift_and_retrain_keys_are_read() -> None:
    s = settings_from_dict(
        {
            "models": [
                _model(
                    drift={"detector": "page_hinkley", "params": {"threshold": 20}},
                    retrain={
                        "policy": "replay",
                        "cooldown_examples": 50,
                        "replay_window": 300,
                        "replay_seconds": 600,
                    },
                )
            ],
            "scorer": {"input_drift": {"detector": "kswin", "sample_per_batch": 10}},
        }
    )
    d = s.drift_of("m")
    assert d.detector.name == "page_hinkley" and d.detector.params == {"threshold": 20}
    assert (d.retrain.policy.value, d.retrain.cooldown_examples, d.retrain.replay_window) == (
        "replay",
        50,
        300,
    )
    assert d.retrain.replay_seconds == 600.0
    assert s.scorer.input_drift.detector == "kswin"
    assert settings_from_dict({"models": [_model(drift=False)]}).drift_of("m").enabled is False


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (_model(drift={"detector": "magic"}), "models[0].drift.detector"),
        (_model(drift={"params": {"nope": 1}}), "models[0].drift.params"),
        (_model(drift={"detector": "adwin", "window": 3}), "models[0].drift.window"),
        (_model(retrain={"policy": "pray"}), "models[0].retrain.policy"),
        (_model(retrain={"cooldown": 3}), "models[0].retrain.cooldown"),
        (_model(retrain={"replay_window": 0}), "models[0].retrain.replay_window"),
        (_model(retrain={"replay_seconds": -1}), "models[0].retrain.replay_seconds"),
        (
            {
                "name": "r",
                "task": "regression",
                "learner": "linear_regression",
                "drift": {"detector": "ddm"},
            },
            "models[0].drift.detector",
        ),
    ],
)
def test_bad_drift_settings_name_the_key(model: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"models": [model]})
    assert info.value.key == key


def test_bad_input_drift_settings_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"scorer": {"input_drift": {"categorical_threshold": 2.0}}})
    assert info.value.key == "scorer.input_drift.categorical_threshold"
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"scorer": {"input_drift": {"detector": "ddm"}}})
    assert info.value.key == "scorer.input_drift.detector"
