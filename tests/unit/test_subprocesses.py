"""Child processes with a log file: output, tail, SIGTERM then SIGKILL, no leaked descriptor."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from streamserve.subprocesses import (
    LoggedProcess,
    ProcessStartError,
    port_open,
    started,
    wait_for_port,
)

PRINTS_THEN_SLEEPS = "import time\nfor i in range(5): print('line', i, flush=True)\ntime.sleep(60)"
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)"
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _open_paths() -> set[str]:
    fds = Path("/proc/self/fd")
    paths = set()
    for fd in fds.iterdir():
        try:
            paths.add(os.readlink(fd))
        except OSError:
            continue
    return paths


def _wait_for_output(proc: LoggedProcess, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in proc.output() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert text in proc.output(), proc.output()


def test_output_and_tail_come_from_the_log_and_the_parent_keeps_no_descriptor() -> None:
    with started(_python(PRINTS_THEN_SLEEPS), log_prefix="ss-unit-") as proc:
        _wait_for_output(proc, "line 4")
        assert proc.log_path.name.startswith("ss-unit-")
        assert str(proc.log_path) not in _open_paths()
        assert proc.tail(2) == "line 3\nline 4"
        assert proc.output().splitlines()[0] == "line 0"
        log = proc.log_path
    assert proc.returncode == -15  # stopped by SIGTERM
    assert not log.exists()
    assert proc.output() == ""


def test_a_process_ignoring_sigterm_is_killed_after_the_timeout() -> None:
    proc = LoggedProcess(_python(IGNORES_SIGTERM))
    try:
        _wait_for_output(proc, "ready")
        assert proc.stop(timeout_s=0.5) is None
        assert proc.returncode == -9
    finally:
        proc.close()
    assert not proc.log_path.exists()


def test_stop_of_an_exited_process_returns_its_code() -> None:
    proc = LoggedProcess(_python("import sys; print('bye'); sys.exit(3)"))
    try:
        assert proc.wait(30) == 3
        assert proc.stop() == 3
        assert proc.output() == "bye\n"
    finally:
        proc.close()


def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    code = "import os; print(os.getcwd(), os.environ['SS_UNIT'], flush=True)"
    env = {**os.environ, "SS_UNIT": "here"}
    with started(_python(code), env=env, cwd=tmp_path) as proc:
        assert proc.wait(30) == 0
        assert proc.output().split() == [str(tmp_path), "here"]


def test_a_command_that_cannot_start_leaves_no_log(tmp_path: Path) -> None:
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("ss-missing-*"))
    with pytest.raises(FileNotFoundError):
        LoggedProcess([str(tmp_path / "no-such-binary")], log_prefix="ss-missing-")
    assert set(temp.glob("ss-missing-*")) == before


def test_wait_for_port_returns_once_the_child_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_open(port)
        with started(_python("import time; time.sleep(60)")) as proc:
            wait_for_port(port, proc, "sleeper", 5.0)


def test_wait_for_port_fails_when_the_child_exits_or_time_runs_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing accepts
        assert not port_open(port)
        with started(_python("import sys; sys.exit(2)")) as proc:
            proc.wait(30)
            with pytest.raises(ProcessStartError, match="exited with code 2"):
                wait_for_port(port, proc, "quitter", 5.0)
        with (
            started(_python("import time; time.sleep(60)")) as sleeper,
            pytest.raises(ProcessStartError, match="did not listen"),
        ):
            wait_for_port(port, sleeper, "sleeper", 0.3)
