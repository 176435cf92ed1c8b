"""SLURMEnvironment(auto_requeue=True): the real signal, a real command on PATH.

Each test sends the signal to its own process with ``os.kill`` and checks what a small
shell script standing in for ``scontrol`` wrote. Before sending, each test checks that the
handler is installed: an unhandled SIGUSR1 would end the test run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from fabric_core._connector import select
from fabric_core.environments import SLURMEnvironment

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@pytest.fixture
def requeue_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``scontrol`` first on PATH that appends its arguments to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scontrol.log"
    script = bin_dir / "scontrol"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SLURM_JOB_ID": "4321", "SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}.items():
        monkeypatch.setenv(name, value)


def _send(env: SLURMEnvironment, sig: signal.Signals, wait_for: Path | None = None) -> None:
    assert env.requeue_handler_installed, "refusing to send a signal nobody handles"
    assert signal.getsignal(sig) is not signal.SIG_DFL
    os.kill(os.getpid(), sig)
    deadline = time.monotonic() + 10
    while wait_for is not None and not wait_for.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # Python runs the handler in the main thread between bytecodes


@pytest.mark.usefixtures("job")
def test_sigusr1_runs_scontrol_requeue(requeue_log: Path) -> None:
    env = SLURMEnvironment(auto_requeue=True)
    assert env.requeue_signal is signal.SIGUSR1
    try:
        _send(env, signal.SIGUSR1, wait_for=requeue_log)
    finally:
        env.teardown()
    assert requeue_log.read_text().splitlines() == ["requeue 4321"]


@pytest.mark.usefixtures("job")
def test_array_task_is_requeued_by_its_array_id(requeue_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "100")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    env = SLURMEnvironment(auto_requeue=True)
    try:
        _send(env, signal.SIGUSR1, wait_for=requeue_log)
    finally:
        env.teardown()
    assert requeue_log.read_text().splitlines() == ["requeue 100_7"]


@pytest.mark.usefixtures("job")
def test_injected_command_and_other_signal(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    script = tmp_path / "requeue.py"
    script.write_text(f"import sys\nopen({str(record)!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    env = SLURMEnvironment(
        auto_requeue=True, requeue_signal=signal.SIGUSR2, requeue_command=[sys.executable, str(script), "--now"]
    )
    assert repr(env) == "SLURMEnvironment(auto_requeue=True, requeue_signal=SIGUSR2)"
    assert signal.getsignal(signal.SIGUSR1) is not env._on_requeue_signal  # only the chosen signal
    try:
        _send(env, signal.SIGUSR2, wait_for=record)
    finally:
        env.teardown()
    assert record.read_text() == "--now 4321"


@pytest.mark.usefixtures("job")
def test_previous_handler_still_runs_and_comes_back(requeue_log: Path) -> None:
    calls: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    signal.signal(signal.SIGUSR1, previous)
    env = SLURMEnvironment(auto_requeue=True)
    try:
        _send(env, signal.SIGUSR1, wait_for=requeue_log)
    finally:
        env.teardown()
    assert calls == [signal.SIGUSR1]
    assert requeue_log.read_text().splitlines() == ["requeue 4321"]
    assert signal.getsignal(signal.SIGUSR1) is previous
    assert not env.requeue_handler_installed


@pytest.mark.usefixtures("job")
def test_other_ranks_install_nothing(requeue_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "1")
    before = signal.getsignal(signal.SIGUSR1)
    env = SLURMEnvironment(auto_requeue=True)
    assert not env.requeue_handler_installed
    assert signal.getsignal(signal.SIGUSR1) is before
    env.teardown()  # harmless
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.usefixtures("job")
def test_nothing_installed_unless_asked() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    env = SLURMEnvironment(auto_requeue=False)
    assert not env.requeue_handler_installed
    assert env.requeue_signal is signal.SIGUSR1  # Lightning's default signal, stored but not handled
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.usefixtures("job")
def test_requeue_is_on_by_default_as_in_lightning(requeue_log: Path) -> None:
    env = SLURMEnvironment()
    assert env.auto_requeue is True
    assert env.requeue_handler_installed
    env.teardown()
    assert not env.requeue_handler_installed


@pytest.mark.usefixtures("job")
def test_detected_environment_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "1")
    before = signal.getsignal(signal.SIGUSR1)
    selection = select(accelerator="cpu", devices=1)
    assert isinstance(selection.environment, SLURMEnvironment)
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.usefixtures("job")
def test_outside_the_main_thread_nothing_is_installed() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    created: list[SLURMEnvironment] = []
    thread = threading.Thread(target=lambda: created.append(SLURMEnvironment(auto_requeue=True)))
    thread.start()
    thread.join(timeout=30)
    assert created and not created[0].requeue_handler_installed
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.usefixtures("job")
def test_failing_command_is_reported_not_raised(tmp_path: Path) -> None:
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho 'slurm_requeue error: Job is not requeueable' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert SLURMEnvironment(requeue_command=[str(failing)]).requeue() is False
    assert SLURMEnvironment(requeue_command=[str(tmp_path / "missing")]).requeue() is False


def test_requeue_without_a_job_id(requeue_log: Path) -> None:
    assert SLURMEnvironment().requeue() is False
    assert not requeue_log.exists()


@pytest.mark.usefixtures("job")
def test_requeue_called_directly(requeue_log: Path) -> None:
    assert SLURMEnvironment().requeue() is True
    assert requeue_log.read_text().splitlines() == ["requeue 4321"]
