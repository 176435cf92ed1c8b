"""The rules discovery enforces on add-ons, with real fake distributions (tests/_fake_dist.py).

* Switch values that do nothing warn (an unknown yes/no word, lists while autoload is off,
  a name that matches no installed add-on).
* An entry-point module that answers a single-owner hook is refused, and ``fabric plugins``
  says so and suggests ``FABRIC_BLOCK_PLUGINS``; a ``Fabric()`` still starts.
* ``fabric_register_commands``: an add-on's subcommand and checkpoint layout reach the
  ``fabric`` command; the core's command names are protected; two add-ons cannot share one.
* Registry data usable by add-ons: aliases (``accelerator="gpu"``) and a strategy's
  fallback on other accelerators (``dp`` -> ``ddp``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.cli import main
from fabric_core.commands import Commands
from fabric_core.discovery import discover, lookup
from fabric_core.errors import FabricPluginWarning, PluginValidationError, ReservedNameError
from fabric_core.registry import Registry
from fabric_core.strategies import SingleDeviceStrategy
from tests._fake_dist import EMPTY_PLUGIN, FakeSite

SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    """A folder of fake add-ons on ``sys.path``, every switch unset (autoload on)."""
    for variable in SWITCHES:
        monkeypatch.delenv(variable, raising=False)
    with FakeSite(tmp_path / "site", monkeypatch) as fake:
        yield fake


def _switch_warnings(caught: Iterable[warnings.WarningMessage]) -> list[FabricPluginWarning]:
    """The switch warnings among ``caught``."""
    return [w.message for w in caught if isinstance(w.message, FabricPluginWarning) and w.message.switch]


# -- switches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["maybe", "2", "disable"])
def test_an_autoload_value_that_is_no_yes_or_no_warns_and_loads_addons(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    site.add("fabric-here", modules={"fake_rules_here": EMPTY_PLUGIN})
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", value)
    with pytest.warns(
        FabricPluginWarning,
        match=rf"^FABRIC_DISABLE_PLUGIN_AUTOLOAD='{value}' is neither a yes \(1, true, yes, on\) nor a no \(0, false, "
        r"no, off\), so it is ignored and add-ons are loaded\. Set FABRIC_DISABLE_PLUGIN_AUTOLOAD=1",
    ):
        found = discover()
    assert found.records_for("fabric-here")[0].status == "loaded"


@pytest.mark.parametrize("value", ["0", "false", "No", "off", ""])
def test_a_no_loads_addons_without_a_warning(site: FakeSite, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    site.add("fabric-here", modules={"fake_rules_here": EMPTY_PLUGIN})
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", value)
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = discover()
    assert not _switch_warnings(caught)
    assert found.records_for("fabric-here")[0].status == "loaded"


@pytest.mark.parametrize("variable", ["FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS"])
def test_a_list_while_autoload_is_off_warns_that_it_does_nothing(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    site.add("fabric-here", modules={"fake_rules_here": EMPTY_PLUGIN})
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv(variable, "fabric-here")
    with pytest.warns(
        FabricPluginWarning,
        match=rf"^{variable}=fabric-here has no effect: FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 loads no add-on at all\. "
        rf"Unset FABRIC_DISABLE_PLUGIN_AUTOLOAD for {variable} to choose add-ons, or unset {variable}\.$",
    ) as caught:
        found = discover()
    assert [w.switch for w in _switch_warnings(caught)] == [variable]
    assert found.records_for("fabric-here")[0].status == "disabled"


@pytest.mark.parametrize("variable", ["FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS"])
def test_a_name_that_matches_no_addon_warns_with_a_suggestion(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    site.add("fabric-speedy", modules={"fake_rules_speedy": EMPTY_PLUGIN}, entry_points={"speedy": "fake_rules_speedy"})
    monkeypatch.setenv(variable, "fabric-speedy,fabric-speedyy")
    with pytest.warns(
        FabricPluginWarning,
        match=rf"^{variable} lists 'fabric-speedyy', which matches no installed add-on, so it does nothing\. Did you "
        r"mean 'fabric-speedy'\? Installed add-ons \(distribution \(entry point\)\): .*fabric-speedy \(speedy\)",
    ) as caught:
        discover()
    assert len(_switch_warnings(caught)) == 1  # 'fabric-speedy' itself matches


def test_entry_point_names_and_any_spelling_match(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-speedy", modules={"fake_rules_speedy": EMPTY_PLUGIN}, entry_points={"speedy": "fake_rules_speedy"})
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "speedy,Fabric_Speedy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = discover()
    assert not _switch_warnings(caught)
    assert found.records_for("fabric-speedy")[0].status == "blocked"


def test_blocking_the_core_warns_that_it_cannot_be(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "fabric-core")
    with pytest.warns(FabricPluginWarning, match=r"^FABRIC_BLOCK_PLUGINS lists 'fabric-core', but fabric-core's own"):
        found = discover()
    assert "single_device" in found.registry("strategy")


# -- the single-owner rule for entry-point modules --------------------------------------------------

OWNER = """
    def fabric_backward(tensor):
        tensor.backward()
        return True
"""

WRAPPER = """
    from fabric_core.hookspecs import hookimpl

    calls = []


    @hookimpl(wrapper=True)
    def fabric_backward(tensor):
        calls.append(tensor.item())
        return (yield)
"""


def test_an_entry_point_answering_a_single_owner_hook_is_refused(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site.add("fabric-owner", modules={"fake_rules_owner": OWNER}, entry_points={"owner": "fake_rules_owner"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-owner")
    with pytest.warns(FabricPluginWarning, match="fabric-owner implements fabric_backward without wrapper=True"):
        found = discover()
    (record,) = found.records_for("fabric-owner")
    assert record.status == "refused"
    assert isinstance(record.error, PluginValidationError)
    assert (record.error.hook, record.error.plugin_name) == ("fabric_backward", "fabric-owner:owner")
    assert record.reason == (
        "fabric-owner implements fabric_backward without wrapper=True, but only the active strategy may answer it "
        "(single-owner rule), so every Fabric would refuse to start with it; it was not loaded. Block it with "
        "FABRIC_BLOCK_PLUGINS=fabric-owner (or its entry-point name owner) to silence this, and report it to the "
        "authors of fabric-owner: the hook must be @hookimpl(wrapper=True)."
    )
    # Fabric starts and trains without it.
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup_module(torch.nn.Linear(2, 1))
    fabric.backward(model(torch.ones(1, 2)).sum())

    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "fabric-owner 1.0.0  [refused]  (owner = fake_rules_owner)" in listing
    assert "FABRIC_BLOCK_PLUGINS=fabric-owner" in listing

    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "fabric-owner")
    assert discover().records_for("fabric-owner")[0].status == "blocked"


def test_an_entry_point_wrapping_a_single_owner_hook_loads_and_runs(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add("fabric-wrap", modules={"fake_rules_wrap": WRAPPER}, entry_points={"wrap": "fake_rules_wrap"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-wrap")
    assert discover().records_for("fabric-wrap")[0].status == "loaded"
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup_module(torch.nn.Linear(2, 1))
    fabric.backward(model(torch.ones(1, 2)).sum() * 0 + 3.0)
    import fake_rules_wrap  # type: ignore[import-not-found]

    assert fake_rules_wrap.calls == [3.0]


# -- fabric_register_commands -------------------------------------------------------------------

COMMANDS = """
    from pathlib import Path

    from fabric_core.hookspecs import hookimpl


    def hello(args):
        print(f"hello {args.who}")
        return 7


    def hello_arguments(parser):
        parser.add_argument("--who", default="world")


    def is_note(directory):
        return (directory / "NOTE").is_file()


    def consolidate_note(directory, output, args):
        if args.shout and not (directory / "NOTE").read_text():
            raise ValueError(f"{directory} holds an empty note; nothing to shout.")
        text = (directory / "NOTE").read_text()
        output.write_text(text.upper() if args.shout else text)
        return f"noted {output}"


    def note_arguments(group):
        group.add_argument("--shout", action="store_true", help="upper-case the note")


    @hookimpl
    def fabric_register_commands(commands):
        commands.add("hello", hello, help="say hello", arguments=hello_arguments)
        commands.add_checkpoint_format(
            "note",
            detect=is_note,
            consolidate="fake_rules_commands:consolidate_note",
            arguments="fake_rules_commands:note_arguments",
            description="a folder with a NOTE file",
        )
"""


def test_an_addon_command_and_checkpoint_format_reach_the_fabric_command(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    site.add("fabric-notes", modules={"fake_rules_commands": COMMANDS}, entry_points={"notes": "fake_rules_commands"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-notes")
    found = discover()
    assert found.records_for("fabric-notes")[0].provides == {"commands": ["hello", "consolidate:note"]}
    assert found.commands.commands["hello"].distribution == "fabric-notes"

    assert main(["hello", "--who", "Fabric"]) == 7
    assert capsys.readouterr().out == "hello Fabric\n"

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "NOTE").write_text("saved at step 3")
    assert main(["consolidate", str(folder), "-o", str(tmp_path / "note.txt"), "--shout"]) == 0
    assert capsys.readouterr().out == f"noted {tmp_path / 'note.txt'}\n"
    assert (tmp_path / "note.txt").read_text() == "SAVED AT STEP 3"

    (folder / "NOTE").write_text("")
    assert main(["consolidate", str(folder), "--shout"]) == 2
    assert capsys.readouterr().err == f"fabric consolidate: error: {folder} holds an empty note; nothing to shout.\n"

    # A folder no layout knows: both layouts are named.
    (tmp_path / "empty").mkdir()
    assert main(["consolidate", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"fabric consolidate: error: '{tmp_path / 'empty'}' is not a sharded checkpoint directory nor a note "
        "checkpoint directory. Point `fabric consolidate` to the directory fabric.save wrote. Layouts known: "
        "sharded (fabric-core): "
    )
    assert "note (fabric-notes): a folder with a NOTE file" in error


@pytest.mark.parametrize("name", ["run", "plugins", "doctor", "consolidate"])
def test_an_addon_cannot_take_a_core_command(site: FakeSite, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    source = f"""
        def fabric_register_commands(commands):
            commands.add({name!r}, lambda args: 0, help="mine")
    """
    site.add("fabric-taker", modules={"fake_rules_taker": source}, entry_points={"taker": "fake_rules_taker"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-taker")
    with pytest.warns(FabricPluginWarning, match=f"fabric-taker adds the command '{name}', which fabric-core's own"):
        found = discover()
    (record,) = found.records_for("fabric-taker")
    assert record.status == "refused"
    assert isinstance(record.error, ReservedNameError)
    assert (record.error.kind, record.error.name, record.error.distribution) == ("command", name, "fabric-taker")
    assert "FABRIC_BLOCK_PLUGINS=fabric-taker" in record.reason


def test_two_addons_cannot_add_one_command(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    source = """
        def fabric_register_commands(commands):
            commands.add("sync", lambda args: 0, help="sync")
    """
    site.add("fabric-alpha", modules={"fake_rules_alpha": source}, entry_points={"alpha": "fake_rules_alpha"})
    site.add("fabric-beta", modules={"fake_rules_beta": source}, entry_points={"beta": "fake_rules_beta"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-alpha,fabric-beta")
    with pytest.warns(FabricPluginWarning, match="fabric-beta adds the command 'sync', which fabric-alpha added first"):
        found = discover()
    assert [found.records_for(name)[0].status for name in ("fabric-alpha", "fabric-beta")] == ["loaded", "failed"]
    assert found.commands.commands["sync"].distribution == "fabric-alpha"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.add("", print, help="x"), "A command name must be a non-empty string"),
        (lambda c: c.add("x", "no_colon", help="x"), r"command 'x': run must be a function or a 'module:function'"),
        (
            lambda c: c.add_checkpoint_format("f", detect=print, consolidate=3, description="d"),
            r"checkpoint format 'f': consolidate must be a function or a 'module:function' string, got 3\.",
        ),
    ],
)
def test_commands_refuse_what_cannot_work(call: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call(Commands(distribution="fabric-x"))  # type: ignore[operator]


# -- registry data: aliases and fallbacks -------------------------------------------------------------

ALIAS_AND_FALLBACK = """
    from fabric_core.hookspecs import hookimpl


    @hookimpl
    def fabric_register_accelerators(registry):
        registry.add_alias("anydevice", ["nonexistent", "cpu"], description="whatever runs here")


    @hookimpl
    def fabric_register_strategies(registry):
        registry.add(
            "cuda_only",
            "fabric_core.strategies.ddp:DDPStrategy",
            accelerators=["cuda"],
            fallback="single_device",
            description="a strategy for CUDA that runs single_device elsewhere",
        )
"""


def test_an_addon_alias_and_fallback_are_used_by_selection(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-data", modules={"fake_rules_data": ALIAS_AND_FALLBACK}, entry_points={"data": "fake_rules_data"})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-data")
    registry = discover().registry("accelerator")
    assert registry.aliases["anydevice"].distribution == "fabric-data"
    assert registry.aliases["gpu"].targets == ("cuda", "mps")
    assert lookup("accelerator", "anydevice").name == "cpu"

    with pytest.warns(
        UserWarning,
        match=r"^strategy='cuda_only' is not supported on accelerator='cpu'; using strategy='single_device'",
    ):
        fabric = Fabric(accelerator="anydevice", strategy="cuda_only")
    assert fabric.accelerator.name == "cpu"
    assert isinstance(fabric.strategy, SingleDeviceStrategy)


def test_gpu_without_cuda_or_mps_names_both() -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match=r"^accelerator='gpu' was requested, but neither CUDA nor MPS is available"):
        Fabric(accelerator="gpu")


def test_registry_records_the_distribution_and_merges_with_conflicts() -> None:
    core = Registry("strategy", distribution="fabric-core")
    core.add("a", "x.y:A")
    addon = Registry("strategy", distribution="fabric-x")
    addon.add("b", "x.y:B", accelerators=["cuda"], fallback="a")
    addon.add_alias("either", ["b", "a"])
    core.merge(addon)
    assert [(e.name, e.distribution) for e in core] == [("a", "fabric-core"), ("b", "fabric-x")]
    assert core.get("b").fallback == "a" and core.get("b").accelerators == ("cuda",)
    assert [e.name for e in core.alias_targets("either")] == ["b", "a"]

    other = Registry("strategy", distribution="fabric-y")
    other.add("b", "x.y:B2")
    core.merge(other)
    assert "b" not in core and [e.distribution for e in core.conflicts["b"]] == ["fabric-x", "fabric-y"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda r: r.add("x", "m:X", fallback="ddp"),
            ValueError,
            r"^strategy 'x': fallback='ddp' needs accelerators=\(\.\.\.\), the accelerators 'x' runs on",
        ),
        (lambda r: r.add_alias("x", "cuda"), TypeError, "targets must be a non-empty list of names"),
        (lambda r: r.merge(Registry("logger")), ValueError, "Cannot merge a logger registry into a strategy registry"),
    ],
)
def test_registry_refuses_what_cannot_work(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(Registry("strategy", distribution="fabric-x"))  # type: ignore[operator]


def test_an_alias_may_not_shadow_a_name() -> None:
    registry = Registry("accelerator", distribution="fabric-x")
    registry.add("tpu", "m:TPU")
    with pytest.raises(ValueError, match=r"accelerator alias 'tpu' from fabric-x: the name is already registered by"):
        registry.add_alias("tpu", ["cpu"])
