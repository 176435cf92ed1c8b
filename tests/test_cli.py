"""``fabric plugins``: what is installed, what it provides and its status.

Run as a real command (``python -m fabric_core.cli`` and the ``fabric`` console script) in
a subprocess with a clean environment; fake add-ons (``tests/_fake_dist.py``) reach it
through ``PYTHONPATH``, the way an installed distribution would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fabric_core import __version__
from fabric_core.cli import main
from fabric_core.discovery import PluginRecord, discover, reset
from tests._fake_dist import FakeSite, broken_plugin, strategy_plugin

#: fabric-core provides at least these (it grows; the listing is compared with discovery itself)
CORE_MINIMUM = {
    "accelerators": {"cpu", "cuda", "mps"},
    "strategies": {"single_device"},
    "precisions": {"16-mixed", "16-true", "32-true", "64-true", "bf16-mixed", "bf16-true"},
    "environments": {"local"},
    "loggers": {"csv"},
}

FABRIC_SCRIPT = shutil.which("fabric")


def _run(args: list[str], site: Path | None = None, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env.update(env_overrides)
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _module(*args: str) -> list[str]:
    return [sys.executable, "-m", "fabric_core.cli", *args]


def _core_record() -> PluginRecord:
    """fabric-core's record from discovery in this process: what the command must print."""
    reset()
    (record,) = discover().records_for("fabric-core")
    reset()
    for kind, names in CORE_MINIMUM.items():
        assert names <= set(record.provides[kind]), kind
    return record


def _by_distribution(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["distribution"]: record for record in listing["plugins"]}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    """Fake add-ons: one that fails to import, two that register the same strategy, one fine."""
    with FakeSite(tmp_path / "site", monkeypatch) as fake:
        fake.add(
            "fabric-broken",
            version="0.2.0",
            modules={"fake_cli_broken": broken_plugin("No module named 'brokenbackend'")},
            entry_points={"broken": "fake_cli_broken"},
        )
        fake.add("fabric-one", modules={"fake_cli_one": strategy_plugin("twin", "x.y:Z", "twin from one")})
        fake.add("fabric-two", modules={"fake_cli_two": strategy_plugin("twin", "x.y:Z", "twin from two")})
        fake.add("fabric-fine", version="3.1.4", modules={"fake_cli_fine": strategy_plugin("fine", "x.y:Z")})
        yield fake


# -- a bare fabric-core ----------------------------------------------------------------------------


def test_plugins_lists_fabric_core() -> None:
    core = _core_record()
    lines = _run(_module("plugins")).stdout.splitlines()
    assert lines[0] == f"fabric-core {__version__}  [loaded]  (builtins = fabric_core._builtins)"
    expected = []
    for kind, names in core.provides.items():
        expected.append(f"    {kind}: {', '.join(names)}")
        if kind == "accelerators":  # an alias is listed under the names of its kind
            expected.append("    accelerator aliases: gpu = cuda | mps")
    assert lines[1 : 1 + len(expected)] == expected
    assert any(line.startswith("    strategies: ") and "single_device" in line for line in lines)


def test_plugins_json_lists_fabric_core() -> None:
    core = _core_record()
    listing = json.loads(_run(_module("plugins", "--json")).stdout)
    assert listing["plugins"][0] == {
        "distribution": "fabric-core",
        "version": __version__,
        "entry_point": "builtins = fabric_core._builtins",
        "status": "loaded",
        "reason": "",
        "error": None,
        "provides": core.provides,
        "aliases": {"accelerators": {"gpu": ["cuda", "mps"]}},
        "hooks": core.hooks,
    }
    assert {"fabric_register_accelerators", "fabric_register_strategies", "fabric_register_precisions"} <= set(
        core.hooks
    )


@pytest.mark.skipif(FABRIC_SCRIPT is None, reason="the fabric console script is not on PATH")
def test_fabric_console_script() -> None:
    assert FABRIC_SCRIPT is not None
    core = _core_record()
    text = _run([FABRIC_SCRIPT, "plugins"]).stdout
    assert text.startswith(f"fabric-core {__version__}  [loaded]  (builtins = fabric_core._builtins)\n")
    listing = json.loads(_run([FABRIC_SCRIPT, "plugins", "--json"]).stdout)
    assert _by_distribution(listing)["fabric-core"]["provides"] == core.provides


# -- with add-ons ------------------------------------------------------------------------------------


def test_plugins_shows_failed_addons_and_conflicts(site: FakeSite) -> None:
    out = _run(_module("plugins"), site=site.root).stdout
    assert (
        "fabric-broken 0.2.0  [failed]  (broken = fake_cli_broken)\n"
        "    reason: ImportError: No module named 'brokenbackend'\n"
    ) in out
    assert "fabric-fine 3.1.4  [loaded]  (fake_cli_fine = fake_cli_fine)\n    strategies: fine\n" in out
    assert (
        "fabric-one 1.0.0  [loaded]  (fake_cli_one = fake_cli_one)\n"
        "    reason: strategy 'twin' conflicts with fabric-two\n"
        "    strategies: twin\n"
    ) in out
    assert "conflict: strategy 'twin' is registered by fabric-one and fabric-two" in out.splitlines()
    # The core is still listed first and loaded.
    assert out.startswith(f"fabric-core {__version__}  [loaded]")


def test_plugins_json_shows_failed_addons_and_conflicts(site: FakeSite) -> None:
    listing = json.loads(_run(_module("plugins", "--json"), site=site.root).stdout)
    records = _by_distribution(listing)
    broken = records["fabric-broken"]
    assert broken["status"] == "failed"
    assert broken["error"] == "ImportError: No module named 'brokenbackend'"
    assert broken["reason"] == "ImportError: No module named 'brokenbackend'"
    assert broken["provides"] == {}
    assert records["fabric-fine"]["status"] == "loaded"
    assert records["fabric-fine"]["provides"] == {"strategies": ["fine"]}
    for kind, names in CORE_MINIMUM.items():
        assert names <= set(records["fabric-core"]["provides"][kind]), kind
    assert listing["conflicts"] == {"strategy": {"twin": ["fabric-one", "fabric-two"]}}


_ALIAS_PLUGIN = """
from fabric_core import hookimpl

@hookimpl
def fabric_register_strategies(registry):
    registry.add_alias("fast", ["ddp_fork", "ddp"], description="fork where the platform can")
"""


def test_plugins_lists_an_addons_aliases(site: FakeSite) -> None:
    # An add-on that only adds an alias: the listing shows it, though the add-on has no names of its own.
    site.add("fabric-alias", modules={"fake_cli_alias": _ALIAS_PLUGIN})
    out = _run(_module("plugins"), site=site.root).stdout
    assert (
        "fabric-alias 1.0.0  [loaded]  (fake_cli_alias = fake_cli_alias)\n    strategy aliases: fast = ddp_fork | ddp\n"
        in out
    )
    listing = json.loads(_run(_module("plugins", "--json"), site=site.root).stdout)
    assert _by_distribution(listing)["fabric-alias"]["aliases"] == {"strategies": {"fast": ["ddp_fork", "ddp"]}}


def test_plugins_shows_the_switches(site: FakeSite) -> None:
    listing = json.loads(
        _run(_module("plugins", "--json"), site=site.root, FABRIC_BLOCK_PLUGINS="fabric-broken,fabric-two").stdout
    )
    records = _by_distribution(listing)
    assert records["fabric-broken"]["status"] == "blocked"
    assert records["fabric-two"]["status"] == "blocked"
    assert records["fabric-one"]["status"] == "loaded"
    assert listing["conflicts"] == {}


# -- in process ---------------------------------------------------------------------------------------


def test_main_in_process(site: FakeSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-fine")
    assert main(["plugins", "--json"]) == 0
    records = _by_distribution(json.loads(capsys.readouterr().out))
    assert records["fabric-fine"]["status"] == "loaded"
    assert records["fabric-broken"]["status"] == "not-allowed"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "plugins" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.strip() == f"fabric-core {__version__}"


def test_main_in_process_with_autoload_off(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fabric-core {__version__}  [loaded]")
    assert (
        "fabric-fine 3.1.4  [disabled]  (fake_cli_fine = fake_cli_fine)\n"
        "    reason: FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 is set; unset it to load add-ons\n"
    ) in out
    assert "conflict:" not in out
