from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamserve.cli import main


def test_bad_config_fails_at_start_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scorer:\n  batch_size: -5\n")
    assert main(["score", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "scorer.batch_size" in err and "positive" in err


def test_missing_broker_for_a_single_role_is_a_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STREAMSERVE_BOOTSTRAP_SERVERS", "STREAMSERVE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["score", "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    assert "kafka.bootstrap_servers" in capsys.readouterr().err


def test_unknown_model_learner_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: m, task: binary, learner: 'nowhere.module:build'}\n")
    assert main(["learn", "--config", str(cfg)]) == 2
    assert "models[0].learner" in capsys.readouterr().err


def test_demo_refuses_a_bad_label_delay_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--label-delay", "soon"]) == 1
    assert "--label-delay" in capsys.readouterr().err


def test_demo_refuses_a_model_that_is_not_binary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - {name: price, task: regression, learner: linear_regression}\n")
    assert main(["demo", "--config", str(cfg)]) == 1
    assert "binary" in capsys.readouterr().err


def test_each_command_names_the_one_setting_it_lacks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("STREAMSERVE")]:
        monkeypatch.delenv(key)
    assert main(["topics", "create"]) == 2
    assert "'kafka.bootstrap_servers'" in capsys.readouterr().err
    assert main(["snapshots", "list"]) == 2
    assert "'redis.url'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["score-file", "backfill"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_chunk_size_is_a_bad_argument(
    command: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, str(tmp_path / "in.jsonl")]
    args += [str(tmp_path / "out.jsonl")] if command == "score-file" else ["--model", "m"]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--chunk-rows", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--chunk-rows" in err and ("at least 1" in err or "whole number" in err)
