"""The console in a real browser (Debian's chromium driven by Playwright) against a running
``streamserve up`` fed a drifting stream: the page shows the model and a serving version
that rises as labels arrive, a drift alert after the drift is injected, learning paused
(by another operator), a rollback made from the page changes what the scorer serves,
resuming learning from the page brings new versions, and the shadow is pinned, unpinned
and promoted from the page; every action is in the audit log.

Screenshots go to the test's folder (``tmp_path``); ``STREAMSERVE_CONSOLE_SCREENSHOT``
names a file to copy the one after the rollback and the resume to (how docs/console.png
is made).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from streamserve.subprocesses import LoggedProcess
from tests.integration.harness import wait_for
from tests.integration.procs import role_env, streamserve
from tests.tools import required

CHROMIUM = "/usr/bin/chromium"
A11Y_CHECK = (Path(__file__).parent / "js" / "a11y_check.js").read_text()
TOKEN = "console-admin-token-0123456789"
RATE = int(os.environ.get("STREAMSERVE_CONSOLE_TEST_RATE", "400"))  # events (and labels) per s


class Stream:
    """Events and their labels on a thread: y = a + b > 0, or the opposite while
    ``drifted`` is set."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self._events = f"{prefix}events"
        self._feedback = f"{prefix}feedback"
        self._stop = threading.Event()
        self.drifted = False
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        while not self._stop.is_set():
            started = time.monotonic()
            for _ in range(RATE // 10):
                a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
                eid = f"e-{self.sent}"
                self.sent += 1
                event = {"event_id": eid, "features": {"a": a, "b": b}}
                self._producer.produce(self._events, json.dumps(event).encode(), eid.encode())
                label = (a + b > 0) != self.drifted
                body = json.dumps({"event_id": eid, "label": label}).encode()
                self._producer.produce(self._feedback, body, eid.encode())
            self._producer.poll(0)
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))
        self._producer.flush(10)
        del self._producer  # closed now, not when the session's broker is gone

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


# The champion and a shadow learning from the same labels.
CONFIG = {
    "models": [
        {"name": "default", "task": "binary", "learner": "logistic_regression"},
        {"name": "shadow_tree", "task": "binary", "learner": "hoeffding_tree"},
    ],
    "serving": {"champion": "default"},
}


@contextmanager
def _up(
    bootstrap: str, redis_url: str, uid: str, folder: Path
) -> Iterator[tuple[LoggedProcess, str, str]]:
    config = folder / "streamserve.yaml"
    config.write_text(json.dumps(CONFIG))  # JSON is YAML
    env = role_env(
        bootstrap,
        redis_url,
        uid,
        STREAMSERVE_API_PORT="0",
        STREAMSERVE__API__ADMIN_TOKENS=TOKEN,
        STREAMSERVE__SNAPSHOTS__CHECKPOINT_EVERY_SECONDS="1",
        STREAMSERVE__SNAPSHOTS__POLL_INTERVAL_SECONDS="0.5",
        STREAMSERVE__SNAPSHOTS__KEEP="500",
        STREAMSERVE__CONSOLE__STATUS_INTERVAL_SECONDS="0.5",
        STREAMSERVE__CONSOLE__UPDATE_SECONDS="0.5",
        STREAMSERVE__SCORER__BATCH_TIMEOUT_MS="20",
        STREAMSERVE__JOINER__SWEEP_INTERVAL_SECONDS="0.5",
    )
    with streamserve(["up", "--config", str(config)], env) as proc:
        wait_for(
            lambda: "streamserve is up" in proc.output() or proc.poll() is not None,
            60,
            "the banner",
        )
        assert proc.poll() is None, proc.output()
        log = proc.output()
        api = re.search(r"http api          : (\S+)", log)
        metrics = re.search(r"metrics           : (\S+)/metrics", log)
        assert api and metrics, log
        yield proc, api.group(1), metrics.group(1)


def _champion(status_url: str) -> str | None:
    return httpx.get(f"{status_url}/healthz", timeout=5).json()["roles"]["scorer"]["champion"]


def _scorer_serves(status_url: str) -> int | None:
    health = httpx.get(f"{status_url}/healthz", timeout=5).json()
    return health["roles"]["scorer"]["serving"].get("default")


class Console:
    """The page of one model in the browser, and the screenshots taken of it."""

    def __init__(self, page: Any, folder: Path, model: str = "default") -> None:
        self.page = page
        self.model = page.locator(f'section[data-model="{model}"]')
        self.folder = folder
        self.shots: list[Path] = []

    def shot(self, name: str) -> None:
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)

    def serving(self) -> int:
        text = self.model.locator('[data-testid="serving"]').inner_text().strip()
        return int(text) if text.isdigit() else 0

    def learning(self) -> str:
        return str(self.model.locator("dd.learning").inner_text())

    def act(self, button: str | None, says: str, version: int | None = None) -> None:
        """Click an action's button (None: it was pressed already); wait for the page to
        say it was done."""
        if version is not None:
            self.model.get_by_label("Version").select_option(str(version))
        if button is not None:
            self.model.get_by_role("button", name=button, exact=True).click()
        result = self.model.locator(".action-result")
        try:
            wait_for(lambda: says in result.inner_text(), 15, f"{button}'s answer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the page says {result.inner_text()!r}") from None

    def audited(self, action: str) -> str:
        row = self.page.locator("#audit tbody tr").first
        wait_for(lambda: action in row.inner_text(), 15, f"the audit log's {action}")
        return str(row.inner_text())


def _sign_in(page: Any, api_url: str) -> Console:
    page.set_default_timeout(30_000)
    page.goto(api_url + "/")
    connection = page.locator("#connection")
    wait_for(lambda: connection.inner_text() == "live", 30, "the live stream")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    console = Console(page, Path())
    console.model.wait_for(timeout=30_000)
    assert "default" in console.model.locator("h2").inner_text()
    return console


def _versions_rise(c: Console) -> None:
    wait_for(lambda: c.serving() >= 1, 60, "a first version")
    first = c.serving()
    wait_for(lambda: c.serving() >= first + 2, 60, "newer versions as labels arrive")
    scored = c.page.locator("#compare td").nth(7)
    wait_for(lambda: scored.inner_text() not in ("—", "0"), 30, "events scored per second")
    # the champion and its shadow side by side, each with its own figures
    rows = c.page.locator("#compare tbody tr")
    wait_for(lambda: rows.count() == 2, 10, "two models in the table")
    assert rows.nth(0).inner_text().split()[:2] == ["default", "champion"]
    assert rows.nth(1).inner_text().split()[:2] == ["shadow_tree", "shadow"]
    shadow = c.page.locator('section[data-model="shadow_tree"] [data-testid="serving"]')
    wait_for(lambda: shadow.inner_text().strip().isdigit(), 30, "the shadow's version")
    c.shot("learning")


def _state(api_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{api_url}/v1/console/state", timeout=10).json()
    return body


def _default(api_url: str) -> dict[str, Any]:
    (model,) = [m for m in _state(api_url)["models"] if m["model"] == "default"]
    return model


def _drift_is_shown(c: Console, stream: Stream, api_url: str) -> None:
    """The labels flip; the learner's error detector alerts; the page shows that alert."""
    injected_ms = time.time() * 1000
    stream.drifted = True
    found: list[dict[str, Any]] = []

    def detected() -> bool:
        alerts = _default(api_url)["alerts"]
        found[:] = [a for a in alerts if a["signal"] == "error" and a["ts"] >= injected_ms]
        return bool(found)

    wait_for(detected, 90, "a drift detected on the model's errors")
    alert = found[-1]  # the first after the drift
    text = f"{alert['detector']} on error at v{alert['model_version']}"
    c.model.locator(".timeline li.alert", has_text=text).first.wait_for(timeout=15_000)
    c.shot("drift")


def _pause_elsewhere(api_url: str) -> None:
    """Another operator pauses learning (over the API) while the drift is looked into."""
    r = httpx.post(
        f"{api_url}/v1/registry/models/default:pause",
        json={"reason": "drift under investigation"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_console_shows_versions_drift_and_rolls_back_from_the_page(
    bootstrap: str, redis_url: str, uid: str, tmp_path: Path
) -> None:
    required(CHROMIUM if Path(CHROMIUM).exists() else None, "chromium (Debian's package)")
    from playwright.sync_api import sync_playwright

    with (
        _up(bootstrap, redis_url, uid, tmp_path) as (proc, api_url, status_url),
        Stream(bootstrap, f"t{uid}.") as stream,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            c = _sign_in(browser.new_page(viewport={"width": 1366, "height": 768}), api_url)
            c.folder = tmp_path
            _versions_rise(c)
            before_drift = c.serving()
            _drift_is_shown(c, stream, api_url)

            # learning paused elsewhere; the page shows it and offers to resume
            _pause_elsewhere(api_url)
            wait_for(lambda: "paused" in c.learning(), 15, "learning shown paused")
            assert "drift under investigation" in c.learning()
            wait_for(  # the learner has seen it (its own gauge): no version after the rollback
                lambda: _default(api_url)["live"]["learning_paused"] is True,
                15,
                "the learner to pause",
            )

            # a rollback from the page to the version from before the drift
            c.act("Roll back", f"rolled back to v{before_drift}", version=before_drift)
            wait_for(lambda: _scorer_serves(status_url) == before_drift, 15, "the scorer")
            wait_for(lambda: c.serving() == before_drift, 15, "the page to show it")
            row = c.audited("rollback")
            assert "admin-token-1" in row and "ok" in row

            # resume from the page, by keyboard: the stream is back to normal, new versions
            stream.drifted = False
            c.model.get_by_role("button", name="Resume learning").focus()
            c.page.keyboard.press("Enter")
            c.act(None, "learning resumed")
            wait_for(lambda: c.learning() == "active", 15, "learning shown active")
            assert "admin-token-1" in c.audited("resume")
            wait_for(lambda: c.serving() > before_drift, 60, "a version learned after resuming")
            assert not c.model.get_by_role("button", name="Resume learning").is_visible()
            c.shot("rolled-back-and-resumed")
            assert c.page.evaluate(A11Y_CHECK) == []  # labelled controls, AA contrast

            _pin_unpin_and_promote_the_shadow(c, status_url)
            assert TOKEN not in c.page.url and TOKEN not in c.page.content()
            assert TOKEN not in proc.output()  # the token is never logged
        finally:
            browser.close()
    target_file = os.environ.get("STREAMSERVE_CONSOLE_SCREENSHOT")
    if target_file:
        shutil.copy2(c.shots[2], target_file)  # rolled back and resumed
    assert len(c.shots) == 4 and all(p.stat().st_size > 10_000 for p in c.shots)


def _pin_unpin_and_promote_the_shadow(c: Console, status_url: str) -> None:
    shadow = Console(c.page, c.folder, "shadow_tree")
    pinned = shadow.serving()
    shadow.act("Pin", f"pinned to v{pinned}", version=pinned)
    wait_for(lambda: shadow.model.locator("dd.pinned").inner_text() == "yes", 15, "pinned")
    time.sleep(2)  # checkpoints go on; the pin holds what serves
    assert shadow.serving() == pinned
    shadow.act("Unpin", "unpinned")
    wait_for(lambda: shadow.model.locator("dd.pinned").inner_text() == "no", 15, "unpinned")
    shadow.act("Promote to champion", "promoted to champion")
    first_row = c.page.locator("#compare tbody tr").first
    wait_for(lambda: first_row.inner_text().split()[:2] == ["shadow_tree", "champion"], 15,
             "the shadow shown as the champion")  # fmt: skip
    health = httpx.get(f"{status_url}/healthz", timeout=5).json()
    wait_for(
        lambda: (
            httpx.get(f"{status_url}/healthz", timeout=5).json()["roles"]["scorer"]["champion"]
            == "shadow_tree"
        ),
        15,
        "the scorer to answer with the new champion",
    )
    assert health["ok"] is True
    actions = c.page.locator("#audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions[:3] == ["promote", "unpin", "pin"]
    c.shot("promoted")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser talks to 127.0.0.1 directly."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
