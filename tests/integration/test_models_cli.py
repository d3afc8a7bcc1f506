"""``streamserve models ...`` against a real Redis, as the command line runs them (no
broker; the signing key only for export and import): what each prints and its exit code
(0 done, 1 not found or refused, 2 a bad argument or setting)."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from streamserve.cli import main
from streamserve.lifecycle.table import render_listing
from streamserve.snapshots import SnapshotCodec, SnapshotMeta, SnapshotStore

KEY = "models-cli-signing-key-0123456789"
OTHER_KEY = "other-deployment-key-0123456789ab"
EXPORT_KEY = "export-only-key-0123456789abcdefg"
MODELS = [
    {"name": "fraud", "task": "binary", "learner": "logistic_regression"},
    {"name": "fraud_nb", "task": "binary", "learner": "naive_bayes"},
    {"name": "basket", "task": "regression", "learner": "linear_regression"},
]


def _config(tmp_path: Path, redis_url: str, prefix: str, key: str | None = KEY, **more: Any) -> str:
    data: dict[str, Any] = {"redis": {"url": redis_url, "key_prefix": prefix}, "models": MODELS}
    data.update(more)
    if key:
        data["snapshots"] = {"signing_key": key}
    path = tmp_path / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _publish(store: SnapshotStore, model: str, versions: int, key: str = KEY) -> None:
    codec = SnapshotCodec([key.encode()])
    for v in range(1, versions + 1):
        meta = SnapshotMeta(
            model=model,
            version=v,
            parent=v - 1 or None,
            created_at=time.time(),
            examples_seen=100 * v,
            offsets={0: 100 * v},
            metrics={"n": 100.0 * v, "accuracy": 0.5 + v / 100},
            format="river-pickle/1",
            learner="logistic_regression",
        )
        store.publish(meta, codec.encode(meta, b"payload-%d" % v))


class Cli:
    """Runs ``streamserve models ...`` in this process with one config file."""

    def __init__(self, config: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> Any:
        got = main(["models", *args, "--config", self.config])
        out, err = self.capsys.readouterr()
        assert got == code, (args, out, err)
        return json.loads(out) if code == 0 else err


@pytest.fixture
def prefix(uid: str) -> str:
    return f"t{uid}"


@pytest.fixture
def store(redis_client: redis.Redis, prefix: str) -> SnapshotStore:
    store = SnapshotStore(redis_client, prefix=prefix, keep=10)
    _publish(store, "fraud", 4)
    return store


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(_config(tmp_path, redis_url, prefix, key=None), capsys)  # Redis only


def test_list_shows_versions_pointers_aliases_and_roles(store: SnapshotStore, cli: Cli) -> None:
    cli("alias", "--model", "fraud", "--name", "champion", "--version", "3")
    listing = cli("list")  # JSON: stdout is not a terminal here
    assert listing["experiment"] is None
    assert [m["model"] for m in listing["models"]] == ["fraud", "fraud_nb", "basket"]
    fraud = listing["models"][0]
    assert (fraud["serving"], fraud["latest"], fraud["pinned"]) == (4, 4, False)
    assert fraud["aliases"] == {"champion": 3} and fraud["role"] is None
    rows = fraud["versions"]
    assert [r["version"] for r in rows] == [4, 3, 2, 1]
    assert rows[1] | {"created_at": 0} == {
        "version": 3,
        "serving": False,
        "parent": 2,
        "created_at": 0,
        "examples_seen": 300,
        "metrics": {"accuracy": 0.53, "n": 300.0},
        "aliases": ["champion"],
        "imported_from": None,
    }
    assert listing["models"][1]["versions"] == []
    assert cli("list", "--model", "basket")["models"][0]["task"] == "regression"


def test_the_table_names_the_serving_version_and_each_alias(store: SnapshotStore, cli: Cli) -> None:
    cli("pin", "--model", "fraud", "--version", "2")
    cli("alias", "--model", "fraud", "--name", "challenger", "--version", "latest")
    text = render_listing(cli("list", "--model", "fraud"))
    lines = text.splitlines()
    assert lines[0] == "fraud: binary, logistic_regression · serving v2 · pinned"
    assert lines[1].split() == [
        "VERSION", "PARENT", "CREATED", "(UTC)", "EXAMPLES", "ACCURACY", "ALIASES"
    ]  # fmt: skip
    assert lines[2].split()[0::5] == ["4", "0.5400"] and lines[2].endswith("challenger")
    assert lines[4].startswith("*") and lines[4].split()[1] == "2"


def test_pin_rollback_and_aliases_by_name(store: SnapshotStore, cli: Cli) -> None:
    cli("alias", "--model", "fraud", "--name", "good", "--version", "2")
    pinned = cli("pin", "--model", "fraud", "--version", "good")["models"][0]
    assert (pinned["serving"], pinned["pinned"]) == (2, True)
    unpinned = cli("unpin", "--model", "fraud")["models"][0]
    assert (unpinned["serving"], unpinned["pinned"]) == (4, False)
    rolled = cli("rollback", "--model", "fraud", "--to", "3")["models"][0]
    assert (rolled["serving"], rolled["resume"], rolled["latest"]) == (3, 3, 4)
    assert store.epoch("fraud") == 1
    assert "no version '9'" in cli("rollback", "--model", "fraud", "--to", "9", code=1)
    assert "no version 'nope'" in cli("pin", "--model", "fraud", "--version", "nope", code=1)
    assert "'latest' cannot be an alias" in cli(
        "alias", "--model", "fraud", "--name", "latest", "--version", "1", code=1
    )
    assert "letters, digits" in cli(
        "alias", "--model", "fraud", "--name", "bad name", "--version", "1", code=1
    )
    gone = cli("alias", "--model", "fraud", "--name", "good", "--delete")["models"][0]
    assert gone["aliases"] == {}
    assert "no alias named 'good'" in cli(
        "alias", "--model", "fraud", "--name", "good", "--delete", code=1
    )
    assert "no model named 'nope' is configured (models: basket, fraud, fraud_nb)" in cli(
        "list", "--model", "nope", code=1
    )


def test_show_one_version_with_its_decision_and_the_experiment(
    store: SnapshotStore, cli: Cli
) -> None:
    cli("alias", "--model", "fraud", "--name", "champion", "--version", "2")
    shown = cli("show", "--model", "fraud")
    assert (shown["version"], shown["serving"], shown["latest"]) == (4, True, True)
    assert shown["offsets"] == {"0": 400} and shown["decision"] is None
    by_alias = cli("show", "--model", "fraud", "--version", "champion")
    assert (by_alias["version"], by_alias["aliases"], by_alias["serving"]) == (
        2,
        ["champion"],
        False,
    )
    assert "no version yet" in cli("show", "--model", "basket", code=1)


def test_a_decision_is_a_new_config_version_and_no_model_version(
    store: SnapshotStore, cli: Cli
) -> None:
    first = cli("decide", "--model", "fraud", "--threshold", "0.8")
    assert first == {"model": "fraud", "decision": {"threshold": 0.8, "version": 1}}
    costs = json.dumps({"true": {"false": 5}, "false": {"true": 1}})
    second = cli("decide", "--model", "fraud", "--costs", costs)["decision"]
    assert second == {"costs": {"true": {"false": 5}, "false": {"true": 1}}, "version": 2}
    assert cli("show", "--model", "fraud")["decision"] == second
    assert cli("list", "--model", "fraud")["models"][0]["decision_version"] == 2
    assert cli("decide", "--model", "fraud", "--clear")["decision"] == {"version": 3}
    assert store.versions("fraud") == [1, 2, 3, 4]
    assert "'decision.threshold'" in cli("decide", "--model", "fraud", "--threshold", "2", code=2)
    assert "a regressor's decision is its prediction" in cli(
        "decide", "--model", "basket", "--threshold", "0.5", code=2
    )
    assert "not 'yes'" in cli("decide", "--model", "fraud", "--costs", '{"yes": {}}', code=2)
    assert "'--costs'" in cli("decide", "--model", "fraud", "--costs", "{", code=2)
    assert store.decision("fraud") == {"version": 3}


def test_promote_makes_the_champion_and_refuses_another_task(
    store: SnapshotStore, cli: Cli
) -> None:
    first = cli("promote", "--model", "fraud")
    assert first["changed"] and first["previous"] is None
    assert first["experiment"] == {"champion": "fraud", "split": {}, "version": 1}
    second = cli("promote", "--model", "fraud_nb")
    assert second["experiment"]["champion"] == "fraud_nb"
    assert second["previous"]["champion"] == "fraud"
    roles = {m["model"]: m["role"] for m in cli("list")["models"]}
    assert roles == {"fraud": "shadow", "fraud_nb": "champion", "basket": "shadow"}
    again = cli("promote", "--model", "fraud_nb")
    assert not again["changed"] and again["experiment"]["version"] == 2
    assert "fraud_nb answers the stream as a binary model" in cli(
        "promote", "--model", "basket", code=1
    )
    assert "no model named 'ghost'" in cli("promote", "--model", "ghost", code=1)
    assert store.experiment() == second["experiment"]
    store.set_experiment({"champion": None, "split": {"fraud": 1, "fraud_nb": 3}})
    arm = cli("list", "--model", "fraud_nb")["models"][0]
    assert (arm["role"], arm["weight"]) == ("arm", 3)
    assert "basket is a regression model" in cli("promote", "--model", "basket", code=1)


def test_export_then_import_into_another_deployment(
    redis_client: redis.Redis,
    tmp_path: Path,
    redis_url: str,
    uid: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    here = SnapshotStore(redis_client, prefix=f"t{uid}a")
    there = SnapshotStore(redis_client, prefix=f"t{uid}b")
    _publish(here, "fraud", 3)
    _publish(there, "fraud", 1, key=OTHER_KEY)
    src = Cli(_config(tmp_path, redis_url, f"t{uid}a"), capsys)
    dst = Cli(_config(tmp_path, redis_url, f"t{uid}b", key=OTHER_KEY), capsys)
    keyfile, file = tmp_path / "export.key", tmp_path / "fraud-v2.ssnap"
    keyfile.write_text(EXPORT_KEY + "\n")

    out = src("export", "--model", "fraud", "--version", "2", str(file), "--key-file", str(keyfile))
    assert out == {"model": "fraud", "version": 2, "file": str(file), "bytes": file.stat().st_size}
    # verified with the import keys before anything is read: this deployment's key fails
    assert "not signed by any of the import keys" in dst(
        "import", str(file), "--model", "fraud", code=1
    )
    done = dst("import", str(file), "--model", "fraud", "--key-file", str(keyfile))
    assert done == {
        "model": "fraud",
        "version": 2,
        "imported_from": {"model": "fraud", "version": 2},
        "examples_seen": 200,
        "serving": 2,
    }
    assert there.resume_version("fraud") == 2
    meta = there.get_meta("fraud", 2)
    assert meta is not None and meta.offsets == {0: 100}  # the position there, not here
    listing = dst("list", "--model", "fraud")
    assert listing["models"][0]["versions"][0]["imported_from"] == {"model": "fraud", "version": 2}
    assert "*  2        imported (fraud v2)" in render_listing(listing)

    missing = str(tmp_path / "none.key")
    assert "'--key-file'" in src(
        "export", "--model", "fraud", "--version", "2", str(file), "--key-file", missing, code=2
    )
    assert "no version '7'" in src("export", "--model", "fraud", "--version", "7", "f", code=1)
    assert "cannot read" in dst("import", str(tmp_path / "absent"), "--model", "fraud", code=1)
    no_key = Cli(_config(tmp_path, redis_url, f"t{uid}c", key=None), capsys)
    assert "'snapshots.signing_key'" in no_key(
        "export", "--model", "fraud", "--version", "1", str(file), code=2
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_table_unless_json_is_asked(
    store: SnapshotStore, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["models", "list", "--model", "fraud", "--config", cli.config]) == 0
    assert terminal.getvalue().startswith("fraud: binary, logistic_regression · serving v4\n")
    terminal.seek(0)
    terminal.truncate()
    assert main(["models", "list", "--json", "--config", cli.config]) == 0
    assert len(json.loads(terminal.getvalue())["models"]) == 3


def test_the_config_files_experiment_and_decision_show_until_the_store_has_its_own(
    store: SnapshotStore,
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = [
        {**MODELS[0], "decision": {"threshold": 0.9}},
        MODELS[1],
        {
            "name": "both",
            "task": "binary",
            "learner": "ensemble",
            "params": {"members": ["fraud", "fraud_nb"], "combine": "mean"},
        },
    ]
    cli = Cli(
        _config(tmp_path, redis_url, prefix, models=models, serving={"champion": "fraud_nb"}),
        capsys,
    )
    listing = cli("list")
    assert listing["experiment"] == {"champion": "fraud_nb", "split": {}, "version": 0}
    fraud, _, both = listing["models"]
    assert fraud["decision"] == {"threshold": 0.9, "version": 0} and fraud["role"] == "shadow"
    assert both["members"] == ["fraud", "fraud_nb"] and both["versions"] == []
    assert (
        "fraud: binary, logistic_regression · serving v4 · shadow · decision v0: threshold 0.9"
        in (render_listing(listing))
    )
    assert "ensemble has no versions of its own" in render_listing(listing)
    promoted = cli("promote", "--model", "fraud")
    assert promoted["previous"] == listing["experiment"]
    assert promoted["experiment"]["version"] == 1
    assert cli("decide", "--model", "fraud", "--clear")["decision"] == {"version": 1}
    assert "decision v1: none" in render_listing(cli("list", "--model", "fraud"))
    assert "both is an ensemble of fraud, fraud_nb" in cli(
        "pin", "--model", "both", "--version", "1", code=1
    )
    assert "both is an ensemble" in cli("show", "--model", "both", code=1)
