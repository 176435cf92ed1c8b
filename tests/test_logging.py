"""fabric-core's own messages through structlog (DESIGN.md section 8)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import structlog.testing
import torch

from fabric_core import _logging

_SWITCHES = (
    "FABRIC_LOG_LEVEL",
    "FABRIC_LOG_FORMAT",
    "FABRIC_LOG_ALL_RANKS",
    "RANK",
    "WORLD_SIZE",
    "SLURM_PROCID",
    "LOCAL_RANK",
    "JSM_NAMESPACE_RANK",
)


@pytest.fixture(autouse=True)
def _fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in _SWITCHES:
        monkeypatch.delenv(variable, raising=False)
    _logging.reset()
    yield
    _logging.reset()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_quiet_by_default_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    log = _logging.get_logger("fabric_core.test")
    log.debug("debug message")
    log.info("info message")
    log.warning("careful", what="disk")
    log.error("broken")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2
    assert "careful" in lines[0] and "what=disk" in lines[0] and "warning" in lines[0]
    assert "rank=0" in lines[0] and "world_size=1" in lines[0]
    assert "fabric_core.test" in lines[0]
    assert "broken" in lines[1] and "error" in lines[1]


@pytest.mark.parametrize(
    ("level", "printed"),
    [
        ("debug", ["d", "i", "w", "e"]),
        ("INFO", ["i", "w", "e"]),
        ("warning", ["w", "e"]),
        ("error", ["e"]),
        ("critical", []),
    ],
)
def test_level_switch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], level: str, printed: list[str]
) -> None:
    monkeypatch.setenv("FABRIC_LOG_LEVEL", level)
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    log = _logging.get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == printed


def test_an_unknown_level_says_so_and_stays_at_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FABRIC_LOG_LEVEL", "verbose")
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    log = _logging.get_logger()
    log.info("hidden")
    log.warning("shown")
    lines = json_lines(capsys.readouterr().err)
    assert [line["level"] for line in lines] == ["warning", "warning"]
    assert "FABRIC_LOG_LEVEL='verbose'" in lines[0]["event"]
    assert lines[1]["event"] == "shown"


def test_json_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "JSON")
    log = _logging.get_logger("fabric_core.strategies").bind(strategy="ddp")
    log.warning("slow collective", seconds=3.5, ranks=[0, 1])
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("step failed")
    captured = capsys.readouterr()
    assert captured.out == ""
    first, second = json_lines(captured.err)
    assert first["event"] == "slow collective"
    assert first["level"] == "warning"
    assert first["logger"] == "fabric_core.strategies"
    assert first["strategy"] == "ddp"
    assert first["seconds"] == 3.5
    assert first["ranks"] == [0, 1]
    assert first["rank"] == 0
    assert first["world_size"] == 1
    assert "T" in first["timestamp"]
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]


def test_rank_and_world_size_are_bound(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    _logging.set_rank(0, 8)
    _logging.get_logger().warning("hello")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["rank"], line["world_size"]) == (0, 8)


def test_only_rank_zero_prints(capsys: pytest.CaptureFixture[str]) -> None:
    log = _logging.get_logger()
    _logging.set_rank(1, 2)
    log.error("from rank one")
    assert capsys.readouterr().err == ""
    _logging.set_rank(0, 2)
    log.error("from rank zero")
    assert "from rank zero" in capsys.readouterr().err


def test_every_rank_prints_when_asked(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FABRIC_LOG_ALL_RANKS", "1")
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    _logging.set_rank(3, 4)
    _logging.get_logger().warning("from rank three")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["event"], line["rank"], line["world_size"]) == ("from rank three", 3, 4)


def test_rank_comes_from_the_environment_until_fabric_sets_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    log = _logging.get_logger()
    log.warning("before setup")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FABRIC_LOG_ALL_RANKS", "true")
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    _logging.reset()
    log.warning("before setup")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["rank"], line["world_size"]) == (2, 4)


def test_configured_on_first_use_not_at_import_or_creation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fabric_core._lifecycle

    # _lifecycle.py created its logger (named for the Fabric) at import; the switches set now still apply.
    module_logger = fabric_core._lifecycle._log
    assert isinstance(module_logger, _logging.FabricLogger)
    created_early = _logging.get_logger("early")
    assert _logging._settings is None
    monkeypatch.setenv("FABRIC_LOG_LEVEL", "debug")
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    module_logger.debug("from fabric.py")
    created_early.debug("from early")
    assert _logging._settings is not None
    lines = json_lines(capsys.readouterr().err)
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("fabric_core.fabric", "from fabric.py"),
        ("early", "from early"),
    ]


def test_settings_are_read_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    log = _logging.get_logger()
    log.info("not shown")
    monkeypatch.setenv("FABRIC_LOG_LEVEL", "debug")  # too late for this process...
    log.info("still not shown")
    assert capsys.readouterr().err == ""
    _logging.reset()  # ... unless the configuration is forgotten
    log.info("shown")
    assert "shown" in capsys.readouterr().err


def test_writes_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _logging.get_logger()
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.warning("one")
    monkeypatch.setattr(sys, "stderr", second)
    log.warning("two")
    assert "one" in first.getvalue() and "two" not in first.getvalue()
    assert "two" in second.getvalue()


def test_a_closed_stderr_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    _logging.get_logger().warning("lost, quietly")
    monkeypatch.setattr(sys, "stderr", None)
    _logging.get_logger().warning("lost, quietly")


def test_is_enabled_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    log = _logging.get_logger()
    assert log.is_enabled_for(logging.WARNING)
    assert not log.is_enabled_for(logging.INFO)
    _logging.set_rank(1, 2)
    assert not log.is_enabled_for(logging.ERROR)


def test_the_applications_structlog_configuration_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    before = structlog.get_config()
    log = _logging.get_logger("fabric_core.test")
    log.warning("ours")
    assert structlog.get_config() == before
    # An application that configures structlog globally neither sees nor reformats our messages...
    with structlog.testing.capture_logs() as captured:
        log.warning("still ours")
        structlog.get_logger("app").warning("theirs")
    assert [entry["event"] for entry in captured] == ["theirs"]
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["ours", "still ours"]
    # ... and after ours was used, structlog's global configuration is what it was.
    assert structlog.get_config() == before


def test_fabric_binds_its_rank(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fabric_core import Fabric

    monkeypatch.setenv("FABRIC_LOG_FORMAT", "json")
    _logging.set_rank(5, 6)
    fabric = Fabric(accelerator="cpu", devices=1)
    fabric.launch()
    _logging.get_logger().warning("after launch")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["rank"], line["world_size"], line["step"]) == (0, 1, 0)
    model = torch.nn.Linear(2, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        fabric.backward(model(torch.ones(1, 2)).sum())
        optimizer.step()
    _logging.get_logger().warning("after three steps")
    (line,) = json_lines(capsys.readouterr().err)
    assert (line["event"], line["rank"], line["world_size"], line["step"]) == ("after three steps", 0, 1, 3)
    fabric._teardown()
