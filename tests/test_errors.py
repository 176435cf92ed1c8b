"""fabric_core.errors: every error and warning from one public module, the same classes the
code raises, with attributes that say what they are about (read here from real raises)."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import fabric_core.errors as errors
from fabric_core import Fabric
from fabric_core.discovery import discover, lookup
from fabric_core.errors import (
    AddonNotInstalledError,
    CheckpointError,
    CollectiveError,
    DuplicateNameError,
    FabricPluginWarning,
    PluginNotAvailableError,
    PluginValidationError,
    ReservedNameError,
    UnsafeCheckpointError,
)
from tests._fake_dist import FakeSite, strategy_plugin

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "errors.md"
SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    for variable in SWITCHES:
        monkeypatch.delenv(variable, raising=False)
    with FakeSite(tmp_path / "site", monkeypatch) as fake:
        yield fake


def test_every_public_name_imports_and_is_an_exception_or_warning() -> None:
    namespace: dict[str, object] = {}
    exec("from fabric_core.errors import *", namespace)
    exported = {name: value for name, value in namespace.items() if not name.startswith("__")}
    assert set(exported) == set(errors.__all__)
    for name, value in exported.items():
        assert isinstance(value, type) and issubclass(value, BaseException), name
    assert set(errors.__all__) <= set(dir(errors))


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("CheckpointError", "fabric_core.checkpoint_io"),
        ("UnsafeCheckpointError", "fabric_core.checkpoint_io"),
        ("CollectiveError", "fabric_core.strategies.collectives"),
        ("DuplicateNameError", "fabric_core.registry"),
        ("PluginNotAvailableError", "fabric_core._lookup"),
        ("PluginValidationError", "fabric_core._plugin_manager"),
        ("FabricPluginWarning", "fabric_core._discovery"),
        ("AddonNotInstalledError", "fabric_core._lazy"),
        ("LossSpikeError", "fabric_core.callbacks"),
        ("EnvironmentVariableError", "fabric_core.environments._variables"),
    ],
)
def test_the_public_class_is_the_one_the_code_raises(name: str, module: str) -> None:
    import importlib

    assert getattr(errors, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_attribute_says_so() -> None:
    with pytest.raises(AttributeError, match="module 'fabric_core.errors' has no attribute 'Nope'"):
        errors.Nope  # noqa: B018


def test_guide_says_where_to_import_from_and_names_every_class() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert "from fabric_core.errors import" in text
    missing = [name for name in errors.__all__ if not re.search(rf"`{name}`", text)]
    assert not missing, f"docs/guide/errors.md does not mention {missing}"


# -- attributes, from real raises ---------------------------------------------------------------


@pytest.mark.usefixtures("fresh_discovery")
def test_unknown_name_carries_kind_name_and_suggestions() -> None:
    with pytest.raises(PluginNotAvailableError, match=r"^Unknown precision='bf61-mixed'\. Did you mean") as raised:
        Fabric(precision="bf61-mixed")
    err = raised.value
    assert (err.kind, err.name, err.distribution, err.status) == ("precision", "bf61-mixed", None, None)
    assert err.suggestions[0] == "bf16-mixed"
    assert isinstance(err, ValueError)


@pytest.mark.usefixtures("fresh_discovery")
def test_a_known_addon_name_carries_the_distribution_and_why() -> None:
    records = discover().records_for("fabric-xla")
    expected = records[0].status if records else "not-installed"
    with pytest.raises(PluginNotAvailableError, match="fabric-xla") as raised:
        lookup("precision", "bf16-xla")
    assert (raised.value.kind, raised.value.name) == ("precision", "bf16-xla")
    assert (raised.value.distribution, raised.value.status) == ("fabric-xla", expected)


def test_a_name_of_two_addons_carries_both(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-one", modules={"fake_err_one": strategy_plugin("twin", "x.y:Z")})
    site.add("fabric-two", modules={"fake_err_two": strategy_plugin("twin", "x.y:Z")})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-one,fabric-two")
    with pytest.warns(FabricPluginWarning, match="registered by both fabric-one and fabric-two") as caught:
        found = discover()
    assert {w.message.distribution for w in caught if isinstance(w.message, FabricPluginWarning)} == {"fabric-two"}
    with pytest.raises(DuplicateNameError, match="strategy 'twin' is registered by both") as raised:
        found.registry("strategy").get("twin")
    assert (raised.value.kind, raised.value.name, raised.value.distributions) == (
        "strategy",
        "twin",
        ("fabric-one", "fabric-two"),
    )


class _WrongArguments:
    def fabric_on_after_backward(self, fabric: object, gradients: object) -> None:
        pass


def test_a_hook_with_an_argument_the_spec_lacks_names_plugin_and_hook() -> None:
    plugin = _WrongArguments()
    with pytest.raises(
        PluginValidationError,
        match=r"^Plugin 'plugin-0:_WrongArguments' implements fabric_on_after_backward with argument\(s\) gradients, "
        r"which the hook does not have; it is called with fabric \(take any of them, by name\)\.$",
    ) as raised:
        Fabric(accelerator="cpu", plugins=[plugin])
    assert (raised.value.plugin, raised.value.hook) == (plugin, "fabric_on_after_backward")


def test_a_missing_addon_class_carries_name_and_distribution() -> None:
    import fabric_core.strategies

    if _installed("fabric_xla"):
        pytest.skip("fabric-xla is installed here")
    with pytest.raises(AddonNotInstalledError, match="pip install fabric-xla|planned but not released") as raised:
        fabric_core.strategies.XLAStrategy  # type: ignore[attr-defined]  # noqa: B018
    assert (raised.value.name, raised.value.distribution) == ("XLAStrategy", "fabric-xla")
    assert isinstance(raised.value, ImportError)


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def test_a_switch_warning_names_the_switch(monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "maybe")
    with pytest.warns(FabricPluginWarning, match="FABRIC_DISABLE_PLUGIN_AUTOLOAD='maybe' is neither") as caught:
        discover()
    (warning,) = [w.message for w in caught if isinstance(w.message, FabricPluginWarning)]
    assert isinstance(warning, FabricPluginWarning)
    assert (warning.switch, warning.distribution) == ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", None)


@pytest.mark.parametrize(
    "error",
    [
        PluginNotAvailableError("m", kind="strategy", name="x", distribution="fabric-x", status="failed"),
        PluginValidationError("m", plugin_name="p", hook="fabric_backward"),
        DuplicateNameError("m", kind="strategy", name="x", distributions=("a", "b")),
        ReservedNameError("m", kind="strategy", name="ddp", distribution="fabric-x"),
        AddonNotInstalledError("m", name="XLAStrategy", distribution="fabric-xla"),
        FabricPluginWarning("m", distribution="fabric-x", switch="FABRIC_PLUGINS"),
        CheckpointError("m", path=Path("ckpt"), reason="mismatch", files={"a.distcp": "truncated"}),
        UnsafeCheckpointError("m", path="c.pt", refused="posix.system"),
        CollectiveError("m", operation="barrier", rank=1, timed_out=True, missing_ranks=(0,)),
    ],
)
def test_attributes_survive_pickling(error: BaseException) -> None:
    # Errors cross process boundaries (spawned ranks report to the launcher).
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_errors_built_from_text_only_still_work_and_new_arguments_are_keyword_only() -> None:
    # Add-ons and user code raise these too, with a message only.
    checkpoint = CheckpointError("text")
    assert (str(checkpoint), checkpoint.path, checkpoint.reason, checkpoint.files) == ("text", None, None, {})
    unsafe = UnsafeCheckpointError("text")
    assert (unsafe.reason, unsafe.refused, unsafe.opt_in) == ("unsafe", None, "weights_only=False")
    collective = CollectiveError("text")
    assert (collective.operation, collective.rank, collective.timed_out, collective.missing_ranks) == (
        "",
        None,
        False,
        None,
    )
    with pytest.raises(TypeError):
        CheckpointError("text", "c.pt")  # type: ignore[misc]
    with pytest.raises(TypeError):
        CollectiveError("text", "barrier")  # type: ignore[misc]


def test_reserved_name_error_is_a_duplicate_name_error_naming_the_core() -> None:
    err = ReservedNameError("m", kind="strategy", name="ddp", distribution="fabric-x")
    assert isinstance(err, DuplicateNameError)
    assert err.distributions == ("fabric-core", "fabric-x")


def test_errors_defined_elsewhere_still_have_their_bases() -> None:
    assert issubclass(CheckpointError, RuntimeError) and issubclass(CollectiveError, RuntimeError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert issubclass(errors.PossibleUserWarning, UserWarning)
