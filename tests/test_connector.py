"""The connector's refusals: ``Fabric``'s arguments, ``plugins`` and ``FABRIC_*`` variables (DESIGN.md section 5)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from fabric_core import Fabric
from fabric_core._connector import normalize_precision, select
from fabric_core.accelerators import CPUAccelerator
from fabric_core.errors import PluginValidationError
from fabric_core.hookspecs import hookimpl
from fabric_core.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from fabric_core.strategies import SingleDeviceStrategy

# -- devices and num_nodes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (
            0,
            "devices=0 is not valid for accelerator='cpu': at least one device is needed. Pass devices=1 or more, "
            "or -1 for all.",
        ),
        (-2, "devices=-2 is not valid for accelerator='cpu': at least one device is needed."),
        (
            "abc",
            "devices='abc' is not valid for accelerator='cpu': expected a number, -1 or 'auto'. Pass for "
            "example devices=2 or devices='auto'.",
        ),
        (
            [0],
            "devices=[0] is not valid for accelerator='cpu': CPU devices are counted, not indexed. Pass the "
            "number of processes, for example devices=2.",
        ),
        ("0,1", "devices='0,1' is not valid for accelerator='cpu': CPU devices are counted, not indexed."),
        (
            True,
            "devices=True is not valid for accelerator='cpu': a bool is not a device count. Pass an int such "
            "as devices=2.",
        ),
        (
            1.5,
            "devices=1.5 is not valid for accelerator='cpu': got a float. Pass an int, -1, 'auto' or a numeric string.",
        ),
    ],
)
def test_bad_devices(devices: Any, expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        Fabric(accelerator="cpu", devices=devices)
    assert str(raised.value).startswith(expected)


@pytest.mark.parametrize("devices", [1, "1", " 1 ", "auto"])
def test_good_devices_for_one_cpu_process(devices: Any) -> None:
    assert select(accelerator="cpu", devices=devices).devices == [0]


@pytest.mark.parametrize("num_nodes", [0, -1, "x", True, 1.0])
def test_bad_num_nodes(num_nodes: Any) -> None:
    with pytest.raises(ValueError) as raised:
        Fabric(accelerator="cpu", num_nodes=num_nodes)
    assert str(raised.value) == f"num_nodes={num_nodes!r} is not valid: expected an int of 1 or more."


def test_num_nodes_as_a_numeric_string() -> None:
    assert select(accelerator="cpu", num_nodes="1").num_nodes == 1


# -- precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", [16.0, True, ["bf16"], torch.float16])
def test_bad_precision_type(precision: Any) -> None:
    with pytest.raises(TypeError) as raised:
        Fabric(precision=precision)
    assert str(raised.value) == (
        f"precision={precision!r}: expected a string such as '32-true' or 'bf16-mixed' (or 16, 32, 64)."
    )


@pytest.mark.parametrize(
    ("precision", "cls", "name"),
    [
        (16, MixedPrecision, "16-mixed"),
        ("16", MixedPrecision, "16-mixed"),
        ("bf16", MixedPrecision, "bf16-mixed"),
        (32, Precision, "32-true"),
        ("32", Precision, "32-true"),
        (None, Precision, "32-true"),
        (64, DoublePrecision, "64-true"),
        ("64", DoublePrecision, "64-true"),
        ("16-true", HalfPrecision, "16-true"),
        ("bf16-true", HalfPrecision, "bf16-true"),
    ],
)
def test_precision_aliases(precision: Any, cls: type, name: str) -> None:
    fabric = Fabric(accelerator="cpu", precision=precision)
    assert type(fabric.strategy.precision) is cls
    assert fabric.strategy.precision.precision == name
    if precision is not None:
        assert normalize_precision(precision) == name


def test_precision_given_as_argument_and_plugin() -> None:
    with pytest.raises(ValueError) as raised:
        Fabric(precision="bf16-mixed", plugins=[DoublePrecision()])
    assert str(raised.value) == (
        "Fabric(precision='bf16-mixed') and a DoublePrecision in plugins=[...] both set the precision. Pass only "
        "one of them."
    )


def test_precision_plugin_alone_is_used() -> None:
    precision = DoublePrecision()
    assert Fabric(accelerator="cpu", plugins=[precision]).strategy.precision is precision


# -- plugins=[...] ---------------------------------------------------------------------------------


def test_two_precision_plugins() -> None:
    with pytest.raises(ValueError) as raised:
        Fabric(plugins=[Precision(), DoublePrecision()])
    assert str(raised.value) == (
        "Fabric(plugins=[...]) got two Precision objects: Precision(precision='32-true') and "
        "DoublePrecision(precision='64-true'). Pass only one."
    )


def test_a_class_instead_of_an_instance() -> None:
    with pytest.raises(TypeError) as raised:
        Fabric(plugins=[DoublePrecision])
    assert str(raised.value) == (
        "Fabric(plugins=[DoublePrecision]) got a class; pass an instance, for example DoublePrecision()."
    )


@pytest.mark.parametrize("plugin", ["bf16-mixed", 16, None])
def test_a_name_instead_of_an_object(plugin: Any) -> None:
    with pytest.raises(TypeError) as raised:
        Fabric(plugins=[plugin])
    assert str(raised.value).startswith(
        f"Fabric(plugins=[{plugin!r}]): plugins must be objects (a Precision, ClusterEnvironment, CheckpointIO or "
        "Strategy instance, or an object implementing fabric_* hooks). Select components by name with the "
        "accelerator=, strategy= and precision= arguments instead."
    )


class _NoHooks:
    def backward(self, tensor: Tensor) -> None:
        pass


class _OnlyAnAttribute:
    fabric_backward = "not a function"


@pytest.mark.parametrize("plugin", [object(), _NoHooks(), _OnlyAnAttribute()])
def test_an_object_without_hooks(plugin: object) -> None:
    with pytest.raises(TypeError) as raised:
        Fabric(plugins=[plugin])
    assert str(raised.value) == (
        f"Fabric(plugins=[...]) got {type(plugin).__name__!r}, which is neither a component (Precision, "
        "ClusterEnvironment, CheckpointIO, Strategy, Accelerator) nor implements any fabric_* hook."
    )


class _Misspelled:
    def fabric_backwards(self, tensor: Tensor) -> None:
        pass


def test_a_misspelled_hook_is_refused_with_a_suggestion() -> None:
    plugin = _Misspelled()
    with pytest.raises(PluginValidationError) as raised:
        Fabric(plugins=[plugin])
    assert str(raised.value) == (
        "Plugin 'plugin-0:_Misspelled' implements 'fabric_backwards', which is not a fabric-core hook. Did you mean "
        "'fabric_backward'? Hook names are listed in fabric_core.hookspecs and docs/reference/hooks.md."
    )
    assert isinstance(raised.value, TypeError)
    assert (raised.value.plugin, raised.value.plugin_name, raised.value.hook) == (
        plugin,
        "plugin-0:_Misspelled",
        "fabric_backwards",
    )


class _SecondOwner:
    def fabric_backward(self, tensor: Tensor) -> bool:
        tensor.backward()
        return True


def test_a_second_owner_of_a_single_owner_hook_is_refused() -> None:
    with pytest.raises(PluginValidationError) as raised:
        Fabric(accelerator="cpu", plugins=[_SecondOwner()])
    assert str(raised.value) == (
        "fabric_backward is implemented by 'strategy' (SingleDeviceStrategy) and 'plugin-0:_SecondOwner' "
        "(_SecondOwner), but only the strategy may answer it. Make the other implementation a wrapper with "
        "@hookimpl(wrapper=True), or pass it as the strategy."
    )
    assert (raised.value.plugin_name, raised.value.hook) == ("plugin-0:_SecondOwner", "fabric_backward")


class _BackwardTimer:
    """A wrapper around the strategy's backward, as a tracing or timing plugin would be."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.grad_seen_after: list[bool] = []
        self.weight: nn.Parameter | None = None

    @hookimpl(wrapper=True)
    def fabric_backward(self, tensor: Tensor) -> Generator[None, Any, Any]:
        self.events.append("before")
        assert self.weight is not None and self.weight.grad is None
        result = yield
        self.events.append("after")
        self.grad_seen_after.append(self.weight.grad is not None)
        return result


def test_a_wrapper_runs_around_backward() -> None:
    timer = _BackwardTimer()
    fabric = Fabric(accelerator="cpu", plugins=[timer])
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    timer.weight = model.weight
    for _ in range(3):
        fabric.backward(model(torch.randn(4, 3)).sum())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert timer.events == ["before", "after"] * 3
    assert timer.grad_seen_after == [True, True, True]


def test_a_strategy_instance_and_a_strategy_name() -> None:
    with pytest.raises(ValueError) as raised:
        Fabric(strategy="single_device", plugins=[SingleDeviceStrategy()])
    assert str(raised.value) == (
        "Fabric(strategy='single_device') and a SingleDeviceStrategy in plugins=[...] both set the strategy. "
        "Pass only one of them."
    )


def test_an_accelerator_instance_and_an_accelerator_name() -> None:
    with pytest.raises(ValueError, match=r"^Fabric\(accelerator='cpu'\) and an accelerator in plugins=\[...\]"):
        Fabric(accelerator="cpu", plugins=[CPUAccelerator()])


# -- accelerator, strategy types ----------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_a_gpu() -> None:
    with pytest.raises(RuntimeError) as raised:
        Fabric(accelerator="cuda")
    assert str(raised.value) == (
        "accelerator='cuda' was requested, but it is not available on this machine. Use accelerator='auto' to "
        "pick what is available, or 'cpu'."
    )


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="needs a machine without a GPU"
)
def test_gpu_requested_without_a_gpu() -> None:
    with pytest.raises(RuntimeError, match=r"^accelerator='gpu' was requested, but neither CUDA nor MPS"):
        Fabric(accelerator="gpu")


def test_accelerator_and_strategy_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"^accelerator=3: expected a name such as 'cpu', 'cuda' or 'auto'"):
        Fabric(accelerator=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^strategy=3: expected a name such as 'auto' or 'ddp'"):
        Fabric(strategy=3)  # type: ignore[arg-type]


def test_names_are_case_insensitive() -> None:
    fabric = Fabric(accelerator="CPU", strategy="Single_Device")
    assert isinstance(fabric.accelerator, CPUAccelerator)
    assert isinstance(fabric.strategy, SingleDeviceStrategy)


# -- FABRIC_* variables (set by the CLI) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "env", "kwargs", "expected"),
    [
        (
            "FABRIC_STRATEGY",
            "ddp",
            {"strategy": "single_device"},
            "Your code has Fabric(strategy='single_device'), which conflicts with --strategy=ddp set through the "
            "command line (FABRIC_STRATEGY). Remove one of the two.",
        ),
        (
            "FABRIC_PRECISION",
            "bf16-mixed",
            {"precision": "64-true"},
            "Your code has Fabric(precision='64-true'), which conflicts with --precision=bf16-mixed set through "
            "the command line (FABRIC_PRECISION). Remove one of the two.",
        ),
        (
            "FABRIC_ACCELERATOR",
            "cpu",
            {"accelerator": "cuda"},
            "Your code has Fabric(accelerator='cuda'), which conflicts with --accelerator=cpu set through the "
            "command line (FABRIC_ACCELERATOR). Remove one of the two.",
        ),
        (
            "FABRIC_DEVICES",
            "1",
            {"devices": 2},
            "Your code has Fabric(devices=2), which conflicts with --devices=1 set through the command line "
            "(FABRIC_DEVICES). Remove one of the two.",
        ),
        (
            "FABRIC_NUM_NODES",
            "1",
            {"num_nodes": 2},
            "Your code has Fabric(num_nodes=2), which conflicts with --num-nodes=1 set through the command line "
            "(FABRIC_NUM_NODES). Remove one of the two.",
        ),
    ],
)
def test_environment_conflicting_with_code(
    monkeypatch: pytest.MonkeyPatch, variable: str, env: str, kwargs: dict[str, Any], expected: str
) -> None:
    monkeypatch.setenv(variable, env)
    with pytest.raises(ValueError) as raised:
        Fabric(**kwargs)
    assert str(raised.value) == expected


def test_environment_agreeing_with_code_or_filling_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC_PRECISION", "bf16-mixed")
    monkeypatch.setenv("FABRIC_STRATEGY", "single_device")
    monkeypatch.setenv("FABRIC_DEVICES", "1")
    assert Fabric(precision="bf16-mixed").strategy.precision.precision == "bf16-mixed"
    fabric = Fabric()
    assert fabric.strategy.precision.precision == "bf16-mixed"
    assert isinstance(fabric.strategy, SingleDeviceStrategy)


def test_cli_values_that_mean_the_same_as_the_code_do_not_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_core._connector import _from_env

    monkeypatch.setenv("FABRIC_PRECISION", "16-mixed")
    assert _from_env("precision", 16, None) == "16-mixed"
    monkeypatch.setenv("FABRIC_DEVICES", "0,1")
    assert _from_env("devices", [0, 1], "auto") == "0,1"
    with pytest.raises(ValueError, match=r"Fabric\(devices=\[0, 2\]\), which conflicts with --devices=0,1"):
        _from_env("devices", [0, 2], "auto")
