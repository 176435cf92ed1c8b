"""The Fabric API on one device: Lightning Fabric's names, arguments and behaviour."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from fabric_core import Fabric, hookimpl, seed_everything
from fabric_core.loggers import Logger
from fabric_core.precision import MixedPrecision
from fabric_core.strategies import SingleDeviceStrategy
from fabric_core.wrappers import FabricDataLoader, FabricModule, FabricOptimizer
from tests.helpers.models import make_data, make_mlp


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)
        self.scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) * self.scale

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).sum(dim=-1)


def test_setup_returns_wrappers_that_keep_the_users_types() -> None:
    fabric = Fabric(accelerator="cpu")
    model = Model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    wrapped_model, wrapped_optimizer = fabric.setup(model, optimizer)

    assert isinstance(wrapped_model, FabricModule)
    assert isinstance(wrapped_optimizer, FabricOptimizer)
    assert isinstance(wrapped_optimizer, torch.optim.AdamW)
    assert wrapped_optimizer.optimizer is optimizer
    assert wrapped_optimizer.param_groups is optimizer.param_groups
    assert wrapped_model.module is model
    assert list(wrapped_model.state_dict()) == ["layer.weight", "layer.bias"]
    assert wrapped_model.layer is model.layer  # attribute access falls through
    wrapped_model.scale = 3.0  # and so does assignment to the user's attributes
    assert model.scale == 3.0
    assert fabric.is_wrapped(wrapped_model) and fabric.is_wrapped(wrapped_optimizer)
    assert not fabric.is_wrapped(model) and not fabric.is_wrapped(optimizer)


def test_a_scheduler_accepts_the_wrapped_optimizer_and_steps_the_real_one() -> None:
    fabric = Fabric(accelerator="cpu")
    model = Model()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=1.0))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(2):
        fabric.backward(model(torch.ones(1, 4)).sum())
        optimizer.step()
        scheduler.step()
    assert optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(0.25)


def test_setup_with_scheduler_appends_it() -> None:
    fabric = Fabric(accelerator="cpu")
    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    result = fabric.setup(model, optimizer, scheduler=scheduler)
    assert len(result) == 3 and result[2] is scheduler


def test_setup_module_then_setup_optimizers() -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup_module(Model())
    optimizer = fabric.setup_optimizers(torch.optim.SGD(model.parameters(), lr=0.1))
    _, second = fabric.setup_optimizers(
        torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(model.parameters())
    )
    assert isinstance(optimizer, torch.optim.SGD) and isinstance(second, torch.optim.Adam)
    before = model.layer.weight.detach().clone()
    fabric.backward(model(torch.ones(2, 4)).sum())
    optimizer.step()
    assert not torch.equal(before, model.layer.weight)


def test_setting_up_twice_and_wrong_order_are_refused() -> None:
    fabric = Fabric(accelerator="cpu")
    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    wrapped_model, wrapped_optimizer = fabric.setup(model, optimizer)
    with pytest.raises(ValueError, match="already set up by Fabric"):
        fabric.setup(wrapped_model)
    with pytest.raises(ValueError, match="optimizer SGD was already set up"):
        fabric.setup(Model(), wrapped_optimizer)
    with pytest.raises(TypeError, match=r"expects a torch.nn.Module first, got SGD"):
        fabric.setup(optimizer, wrapped_model)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Pass a learning-rate scheduler as scheduler="):
        fabric.setup(Model(), torch.optim.lr_scheduler.StepLR(optimizer, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs at least one optimizer"):
        fabric.setup_optimizers()
    loader = fabric.setup_dataloaders(DataLoader(range(4)))
    with pytest.raises(ValueError, match="dataloader was already set up"):
        fabric.setup_dataloaders(loader)
    with pytest.raises(TypeError, match=r"expects torch.utils.data.DataLoader objects, got int. Wrap the data"):
        fabric.setup_dataloaders(3)  # type: ignore[arg-type]
    # Any other iterable too, as in Lightning (it used to be accepted and never sharded).
    with pytest.raises(TypeError, match="expects torch.utils.data.DataLoader objects, got list"):
        fabric.setup_dataloaders([torch.ones(2)])  # type: ignore[arg-type]


def test_mark_forward_method_routes_through_precision() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-mixed")
    model = fabric.setup(Model())
    model.mark_forward_method("generate")
    out = model.generate(torch.ones(2, 4))
    assert out.dtype == torch.float32  # converted back from autocast's bfloat16
    assert model.module.forward.__func__ is Model.forward  # restored afterwards
    with pytest.raises(ValueError, match="has no method 'nope'"):
        model.mark_forward_method("nope")


class RecordingSampler(Sampler[int]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size


def test_dataloader_sets_epoch_each_iteration_and_keeps_attributes() -> None:
    fabric = Fabric(accelerator="cpu")
    dataset = TensorDataset(torch.arange(8.0).view(4, 2))
    sampler = RecordingSampler(4)
    loader = fabric.setup_dataloaders(DataLoader(dataset, batch_size=2, sampler=sampler))
    assert isinstance(loader, FabricDataLoader)
    assert len(loader) == 2 and loader.batch_size == 2 and loader.dataset is dataset
    for _ in range(3):
        batches = list(loader)
        assert batches[0][0].device == fabric.device
    assert sampler.epochs == [0, 1, 2]
    first, second = fabric.setup_dataloaders(DataLoader(dataset), DataLoader(dataset), move_to_device=False)
    assert first.device is None and second.device is None


def test_backward_clip_gradients_by_norm_and_value() -> None:
    fabric = Fabric(accelerator="cpu")
    model = Model()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fabric.backward(model(torch.full((3, 4), 100.0)).sum(), model=model)
    norm = fabric.clip_gradients(model, optimizer, max_norm=1.0)
    assert norm is not None and norm > 1.0
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    assert clipped.norm() == pytest.approx(1.0, rel=1e-4)
    assert fabric.clip_gradients(model, optimizer, clip_val=0.01) is None
    assert all(p.grad.abs().max() <= 0.01 for p in model.parameters())  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="exactly one of clip_val"):
        fabric.clip_gradients(model, optimizer)
    with pytest.raises(ValueError, match="exactly one of clip_val"):
        fabric.clip_gradients(model, optimizer, clip_val=1.0, max_norm=1.0)


def test_clip_gradients_unscales_16_mixed_first() -> None:
    default = Fabric(accelerator="cpu", precision="16-mixed").strategy.precision
    assert isinstance(default.scaler, torch.amp.GradScaler)  # type: ignore[attr-defined]
    # A smaller initial scale than the default 65536, so the first float16 backward stays finite.
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    fabric = Fabric(accelerator="cpu", plugins=[MixedPrecision("16-mixed", scaler=scaler)])
    model = Model()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fabric.backward(model(torch.ones(2, 4)).sum())
    norm = fabric.clip_gradients(model, optimizer, max_norm=1e6)
    # Without unscaling, the norm would carry the scale factor (1024).
    assert norm is not None and norm < 100
    optimizer.step()
    assert scaler.get_scale() == 1024.0  # the step was finite, so the scale stayed


def test_autocast_and_init_contexts() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-mixed")
    with fabric.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16

    fabric = Fabric(accelerator="cpu", precision="bf16-true")
    with fabric.init_module():
        layer = nn.Linear(2, 2)
    assert layer.weight.dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32  # restored

    fabric = Fabric(accelerator="cpu", precision="64-true")
    with fabric.init_tensor():
        assert torch.ones(2).dtype == torch.float64
    model = fabric.setup(nn.Linear(2, 2))
    assert model.weight.dtype == torch.float64
    assert model(torch.ones(1, 2)).dtype == torch.float32


class ConstantInit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        nn.init.constant_(self.weight, 5.0)


def test_init_module_empty_init_skips_initialization() -> None:
    fabric = Fabric(accelerator="cpu")
    with fabric.init_module(empty_init=False):
        assert torch.equal(ConstantInit().weight, torch.full((3,), 5.0))
    with fabric.init_module(empty_init=True):
        module = ConstantInit()
    assert torch.equal(module.weight, torch.zeros(3))  # created, but nn.init.constant_ was skipped
    with fabric.init_module(empty_init=True):
        layer = nn.Linear(3, 3)
    assert layer.weight.shape == (3, 3)


def test_to_device_print_and_seed(capsys: pytest.CaptureFixture[str]) -> None:
    fabric = Fabric(accelerator="cpu")
    batch = fabric.to_device({"x": torch.ones(2), "y": [torch.zeros(1)]})
    assert batch["x"].device == fabric.device and batch["y"][0].device == fabric.device
    module = fabric.to_device(nn.Linear(1, 1))
    assert next(module.parameters()).device.type == "cpu"
    fabric.print("hello", 1)
    assert capsys.readouterr().out == "hello 1\n"

    assert seed_everything(123) == 123 and Fabric.seed_everything(123) == 123
    first = torch.rand(3)
    fabric.seed_everything(123)
    assert torch.equal(first, torch.rand(3))
    with pytest.raises(ValueError, match="between 0 and"):
        seed_everything(-1)


def test_seed_everything_workers_installs_worker_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    fabric = Fabric(accelerator="cpu")
    fabric.seed_everything(7, workers=True)
    loader = fabric.setup_dataloaders(DataLoader(range(4)))
    assert loader.worker_init_fn is not None
    fabric.seed_everything(7, workers=False)
    assert fabric.setup_dataloaders(DataLoader(range(4))).worker_init_fn is None


def test_collectives_on_one_device() -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.barrier()
    fabric.barrier("named")
    assert fabric.broadcast({"a": 1}) == {"a": 1}
    gathered = fabric.all_gather({"x": torch.ones(2), "n": 3})
    assert torch.equal(gathered["x"], torch.ones(2)) and torch.equal(gathered["n"], torch.tensor(3))
    assert torch.equal(fabric.all_reduce(torch.tensor([2.0]), reduce_op="sum"), torch.tensor([2.0]))
    assert torch.equal(fabric.all_reduce(5), torch.tensor(5))
    order = []
    with fabric.rank_zero_first():
        order.append("inside")
    with fabric.rank_zero_first(local=True):
        order.append("local")
    assert order == ["inside", "local"]


class MemoryLogger(Logger):
    def __init__(self) -> None:
        self.rows: list[tuple[dict[str, Any], int | None]] = []
        self.finalized: list[str] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.rows.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def finalize(self, status: str) -> None:
        self.finalized.append(status)


def test_log_and_log_dict_reach_every_logger_as_scalars() -> None:
    first, second = MemoryLogger(), MemoryLogger()
    fabric = Fabric(accelerator="cpu", loggers=[first, second])
    assert fabric.logger is first and fabric.loggers == [first, second]
    fabric.log("loss", torch.tensor(0.5), step=3)
    fabric.log_dict({"a": 1, "b": torch.tensor([2.0])})
    assert first.rows == second.rows == [({"loss": 0.5}, 3), ({"a": 1, "b": 2.0}, None)]
    with pytest.raises(ValueError, match="single-element tensors"):
        fabric.log("vector", torch.ones(3))
    with pytest.raises(TypeError, match="expects a mapping"):
        fabric.log_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a fabric_core.loggers.Logger"):
        Fabric(accelerator="cpu", loggers=[object()])
    with pytest.raises(RuntimeError, match="no logger was given"):
        _ = Fabric(accelerator="cpu").logger


class EventRecorder:
    """A callback with both Lightning-style methods and fabric_* event hooks."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_train_epoch_end(self, epoch: int, extra: str = "") -> None:
        self.events.append(f"epoch_end:{epoch}{extra}")

    @hookimpl
    def fabric_on_launch(self, fabric: Fabric) -> None:
        self.events.append("launch")

    @hookimpl
    def fabric_on_after_setup(self, module: nn.Module) -> None:
        self.events.append(f"setup:{type(module).__name__}")

    def fabric_on_before_backward(self, loss: torch.Tensor) -> None:  # unmarked hooks count too
        self.events.append("before_backward")

    def fabric_on_after_backward(self) -> None:
        self.events.append("after_backward")

    def fabric_on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.events.append(f"before_step:{type(optimizer).__name__}")

    def fabric_on_after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.events.append("after_step")

    def fabric_on_save_checkpoint(self, state: dict[str, Any]) -> None:
        state["added_by_callback"] = 1
        self.events.append("save")

    def fabric_on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.events.append(f"load:{sorted(checkpoint)}")

    def fabric_on_teardown(self) -> None:
        self.events.append("teardown")


def test_callbacks_get_call_and_event_hooks(tmp_path: Any) -> None:
    recorder = EventRecorder()
    fabric = Fabric(accelerator="cpu", callbacks=recorder)

    def run(fabric: Fabric, scale: int) -> int:
        model = Model()
        model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
        fabric.backward(model(torch.ones(1, 4)).sum() * scale)
        optimizer.step()
        fabric.call("on_train_epoch_end", 0, extra="!")
        fabric.call("not_implemented_anywhere")
        fabric.save(tmp_path / "ckpt.pt", {"step": 1})
        fabric.load(tmp_path / "ckpt.pt", {"step": 0})
        return 42

    assert fabric.launch(run, 2) == 42
    assert recorder.events == [
        "launch",
        "setup:FabricModule",
        "before_backward",
        "after_backward",
        "before_step:SGD",
        "after_step",
        "epoch_end:0!",
        "save",
        "load:['added_by_callback']",
        "teardown",
    ]


def test_call_skips_a_non_callable_attribute_with_a_warning() -> None:
    class Odd:
        on_thing = 3

    class Fine:
        def __init__(self) -> None:
            self.calls = 0

        def on_thing(self) -> None:
            self.calls += 1

    fine = Fine()
    fabric = Fabric(accelerator="cpu", callbacks=[Odd(), fine])
    with pytest.warns(UserWarning, match=r"fabric.call\('on_thing'\) skipped Odd.on_thing: it is not callable"):
        fabric.call("on_thing")
    assert fine.calls == 1  # the others still run


def test_launch_checks_its_arguments() -> None:
    fabric = Fabric(accelerator="cpu")
    with pytest.raises(TypeError, match="expected a function"):
        fabric.launch(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must take the Fabric object"):
        fabric.launch(lambda: None)
    fabric.launch()
    with pytest.raises(RuntimeError, match="called twice"):
        fabric.launch()


def test_no_backward_sync_needs_a_wrapped_model() -> None:
    fabric = Fabric(accelerator="cpu")
    with (
        pytest.raises(TypeError, match="needs the model returned by fabric.setup"),
        fabric.no_backward_sync(Model()),
    ):
        pass
    model = fabric.setup(Model())
    with fabric.no_backward_sync(model):
        fabric.backward(model(torch.ones(1, 4)).sum())
    assert model.layer.weight.grad is not None


class _Launcher:
    is_interactive_compatible = True
    requires_function = False

    def launch(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)


class LaunchingStrategy(SingleDeviceStrategy):
    """A strategy that needs launch(), as multi-process strategies do."""

    def __init__(self) -> None:
        super().__init__()
        self.launcher = _Launcher()


def test_setup_without_launch_is_refused_when_the_strategy_launches() -> None:
    fabric = Fabric(accelerator="cpu", strategy=LaunchingStrategy())
    with pytest.raises(RuntimeError, match=r"fabric.launch\(\) was not called"):
        fabric.setup(Model())
    fabric.launch()
    fabric.setup(Model())


def test_properties_on_one_device() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    assert fabric.device == torch.device("cpu")
    assert (fabric.global_rank, fabric.local_rank, fabric.node_rank, fabric.world_size) == (0, 0, 0, 1)
    assert fabric.is_global_zero
    assert isinstance(fabric.strategy, SingleDeviceStrategy)
    assert fabric.accelerator.name == "cpu"
    assert "SingleDeviceStrategy" in repr(fabric)


def test_training_with_fabric_dataloader_end_to_end() -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.seed_everything(0)
    inputs = torch.cat([x for x, _ in make_data(4)])
    targets = inputs[:, :2] * 2
    loader = fabric.setup_dataloaders(DataLoader(TensorDataset(inputs, targets), batch_size=16, shuffle=True))
    model = make_mlp()
    model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    losses = []
    for _ in range(20):
        for x, y in loader:
            loss = nn.functional.mse_loss(model(x), y)
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_plugins_registered_on_the_plugin_manager_later_take_effect() -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(Model())
    seen: list[str] = []

    class Late:
        @hookimpl(wrapper=True)
        def fabric_backward(self, tensor: torch.Tensor) -> Any:
            seen.append("wrapped")
            return (yield)

        def fabric_on_after_backward(self) -> None:
            seen.append("after")

    late = Late()
    fabric.plugin_manager.register(late)
    fabric.backward(model(torch.ones(1, 4)).sum())
    assert seen == ["wrapped", "after"]
    assert model.layer.weight.grad is not None  # the strategy still ran the backward
    fabric.plugin_manager.unregister(late)
    fabric.backward(model(torch.ones(1, 4)).sum())
    assert seen == ["wrapped", "after"]
