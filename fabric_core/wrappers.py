"""The objects ``fabric.setup`` returns, which keep looking like the user's own.

* :class:`FabricModule` runs forward under the precision's context and converts inputs
  and outputs. Its ``state_dict`` has no wrapper prefix; attribute access falls through.
* :class:`FabricOptimizer` is an instance of the user's optimizer class (schedulers accept
  it); ``step()`` goes through the strategy.
* :class:`FabricDataLoader` moves batches to the device and calls ``set_epoch`` on the
  sampler at the start of every epoch. It is stateful (the data position, for exact resume);
  checkpoints keep it rather than the user's DataLoader (:func:`unwrap_for_checkpoint`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim import Optimizer
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from fabric_core.utilities.data import sized_len
from fabric_core.utilities.random_state import gather_per_rank, own_rank_entry

if TYPE_CHECKING:
    from fabric_core._plugin_manager import FabricHooks
    from fabric_core.strategies.strategy import Strategy


#: Methods of a LightningModule-style model that always run through the strategy's forward path.
STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")

_NO_INSTANCE_FORWARD = object()


class FabricModule(nn.Module):
    """Wraps the module a strategy returned (``forward_module``) and the user's ``original_module``.

    For a single device both are the same object; under DDP the first is the
    ``DistributedDataParallel`` wrapper and the second the user's model.

    Calls never bypass the strategy: ``forward``, the step methods (:data:`STEP_METHODS`)
    and methods named with :meth:`mark_forward_method` run through ``forward_module``. Any
    other method of the user's model called on this wrapper while the strategy needs its
    forward path (DDP, FSDP, DeepSpeed, model parallel) runs under a guard that raises as
    soon as it calls a submodule or computes with a parameter, instead of training silently
    wrong.
    """

    def __init__(self, forward_module: nn.Module, strategy: Strategy, original_module: nn.Module | None = None) -> None:
        super().__init__()
        original_module = original_module or forward_module
        self._forward_module = forward_module
        # The same object again, in the instance dict: reading a registered child goes
        # through nn.Module.__getattr__ (~0.7 us), and forward runs every step.
        self.__dict__["_forward_call"] = forward_module
        # Stored outside nn.Module's registry so it is not a second child (no duplicate
        # parameters, no prefix in state dicts).
        self.__dict__["_original_module"] = original_module
        self.__dict__["_strategy"] = strategy
        self.__dict__["_forward_methods"] = set(STEP_METHODS)
        self.__dict__["_precision"] = strategy.precision
        self.__dict__["_guarded"] = forward_module is not original_module or getattr(
            strategy, "requires_forward_path", False
        )

    @property
    def module(self) -> nn.Module:
        """The user's model."""
        return self._original_module  # type: ignore[no-any-return]

    @property
    def device(self) -> torch.device:
        """Where the model's parameters (or buffers) are; the strategy's device for a model without any."""
        tensor = _first_tensor(self._original_module)
        return tensor.device if tensor is not None else self._strategy.root_device  # type: ignore[no-any-return]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's floating-point parameters (torch's default dtype without any)."""
        tensor = _first_tensor(self._original_module, floating=True)
        return tensor.dtype if tensor is not None else torch.get_default_dtype()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        precision = self._precision
        forward_module = self._forward_call
        if not precision.converts:
            return forward_module(*args, **kwargs)
        args, kwargs = precision.convert_input((args, kwargs))
        with precision.forward_context():
            output = forward_module(*args, **kwargs)
        return precision.convert_output(output)

    def mark_forward_method(self, method: str | Callable[..., Any]) -> None:
        """Route calls of another method (``model.generate(...)``) through the strategy and precision, like forward.

        Inside the method, ``self(...)`` and ``self.forward(...)`` are the real forward again,
        so a ``generate`` loop over ``self(x)`` works.
        """
        name = method if isinstance(method, str) else getattr(method, "__name__", "")
        if not isinstance(getattr(self._original_module, name, None), Callable):  # type: ignore[arg-type]
            raise ValueError(
                f"mark_forward_method({method!r}): {type(self._original_module).__name__} has no method {name!r}."
            )
        if name == "forward":
            raise ValueError("mark_forward_method('forward'): forward already runs through Fabric.")
        self._forward_methods.add(name)

    def _redirected(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        original = self._original_module

        def call(*args: Any, **kwargs: Any) -> Any:
            # The method runs as the forward of the forward module, so the strategy's wrapper
            # (DDP's gradient sync, FSDP's gathering) sees it like a forward pass. It puts the
            # real forward back first: the method may call self(...) itself.
            previous = original.__dict__.get("forward", _NO_INSTANCE_FORWARD)

            def run_method(*method_args: Any, **method_kwargs: Any) -> Any:
                _restore_forward(original, previous)
                return method(*method_args, **method_kwargs)

            original.forward = run_method
            try:
                return self(*args, **kwargs)
            finally:
                _restore_forward(original, previous)

        return call

    def _guard(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        original = self._original_module
        strategy = type(self._strategy).__name__

        def call(*args: Any, **kwargs: Any) -> Any:
            with _OutsideForwardGuard(original, name, strategy):
                return method(*args, **kwargs)

        return call

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self._original_module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self._original_module.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            original = self.__dict__.get("_original_module")
            if original is None:
                raise
        attribute = getattr(original, name)
        if not inspect.ismethod(attribute) or attribute.__self__ is not original or hasattr(nn.Module, name):
            return attribute
        if name in self.__dict__["_forward_methods"]:
            return self._redirected(name, attribute)
        if self.__dict__["_guarded"]:
            return self._guard(name, attribute)
        return attribute

    def __setattr__(self, name: str, value: Any) -> None:
        original = self.__dict__.get("_original_module")
        if original is not None and not name.startswith("_") and hasattr(original, name) and name not in self.__dict__:
            setattr(original, name, value)
            return
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"FabricModule({self._original_module!r})"


def _first_tensor(module: nn.Module, floating: bool = False) -> Tensor | None:
    for tensor in (*module.parameters(), *module.buffers()):
        if not floating or tensor.is_floating_point():
            return tensor
    return None


def _restore_forward(module: nn.Module, previous: Any) -> None:
    if previous is _NO_INSTANCE_FORWARD:
        module.__dict__.pop("forward", None)
    else:
        module.__dict__["forward"] = previous


def _class_name(module: nn.Module) -> str:
    """The user's class name, not the one a strategy made for it (FSDP2's ``FSDPMyModel``)."""
    user_class = next((cls for cls in type(module).__mro__ if not cls.__module__.startswith("torch.")), None)
    return (user_class or type(module)).__name__


class _OutsideForwardGuard(TorchFunctionMode):
    """Raises when a method called outside the strategy's forward path uses the model's weights.

    "Uses" means: one of the model's modules runs its forward, or a computation with grad
    enabled takes a parameter and produces a tensor that requires grad. Reading metadata
    (shapes, ``numel()``) and ``torch.no_grad()`` work on parameters pass.
    """

    def __init__(self, module: nn.Module, method: str, strategy: str) -> None:
        super().__init__()
        self._module = module
        self._method = method
        self._strategy = strategy
        self._modules = {id(m) for m in module.modules()}
        self._parameters = {id(p) for p in module.parameters()}
        self._handle: Any = None

    def __enter__(self) -> _OutsideForwardGuard:
        self._handle = register_module_forward_pre_hook(self._check_module)
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)  # type: ignore[no-untyped-call]
        self._handle.remove()

    def _check_module(self, module: nn.Module, args: Any) -> None:
        if id(module) in self._modules:
            self._refuse(f"it calls {_class_name(module)}.forward")

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if isinstance(result, Tensor) and result.requires_grad and torch.is_grad_enabled():
            leaves = tree_leaves((args, kwargs))
            if any(isinstance(leaf, Tensor) and id(leaf) in self._parameters for leaf in leaves):
                self._refuse("it computes with the model's parameters")
        return result

    def _refuse(self, what: str) -> None:
        name = _class_name(self._module)
        raise RuntimeError(
            f"{name}.{self._method}() was called on the model returned by fabric.setup(), outside its forward: "
            f"{what}, so {self._strategy} would not see it (no gradient sync, no parameter gathering) and training "
            f"would be silently wrong. Mark the method once after setup: "
            f"model.mark_forward_method({self._method!r}); it then runs through the strategy like forward."
        )


class FabricOptimizer:
    """Stands in for the user's optimizer: same class (by subclassing), shared state.

    ``param_groups``, ``state`` and ``defaults`` are the original optimizer's own objects,
    so learning-rate schedulers and direct edits act on the real optimizer.
    """

    def __init__(self, optimizer: Optimizer, strategy: Strategy, hooks: FabricHooks) -> None:
        # A class made per optimizer type, so isinstance(wrapped, type(optimizer)) holds.
        self.__class__ = type(f"Fabric{type(optimizer).__name__}", (FabricOptimizer, type(optimizer)), {})
        self._optimizer = optimizer
        self._strategy = strategy
        self._hooks = hooks
        # The Fabric's own list (callbacks added later, a LightningModule's, appear in it):
        # read on every step, so kept here rather than looked up through the Fabric.
        self._callbacks: list[Any] = hooks.fabric.callbacks

    @property
    def optimizer(self) -> Optimizer:
        """The user's optimizer."""
        return self._optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self._optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self._optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self._optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self._optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self._optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self._optimizer.defaults = value

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        kwargs = {} if closure is None else {"closure": closure}
        if not self._callbacks:
            return self._hooks.optimizer_step(self._optimizer, kwargs)
        # Lightning's callback methods, besides the fabric_on_*_optimizer_step event hooks.
        fabric = self._hooks.fabric
        fabric.call("on_before_optimizer_step", strategy=self._strategy, optimizer=self._optimizer)
        result = self._hooks.optimizer_step(self._optimizer, kwargs)
        fabric.call("on_after_optimizer_step", strategy=self._strategy, optimizer=self._optimizer)
        return result

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self._strategy.get_optimizer_state(self._optimizer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._optimizer.add_param_group(param_group)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally: the optimizer's own internals.
        if name == "_optimizer":
            raise AttributeError(name)
        return getattr(self._optimizer, name)

    def __repr__(self) -> str:
        return f"Fabric{self._optimizer!r}"


class FabricDataLoader:
    """Iterates the user's DataLoader, moving batches to ``device`` and advancing the epoch.

    It is also the run's **data position**, a stateful object for ``fabric.save``/``fabric.load``:
    ``state_dict()`` holds the epoch and the number of batches of it already yielded, and
    after ``load_state_dict()`` the next iteration continues that epoch right after the last
    batch yielded, with the same order, then the following epochs go on as usual. See
    :meth:`state_dict` for how the order is reproduced without loading the skipped data.

    A DataLoader that keeps its own position (torchdata's ``StatefulDataLoader``, anything with
    ``state_dict``/``load_state_dict``) is trusted with it: its state is saved alongside the
    epoch counter and it resumes itself.
    """

    def __init__(self, dataloader: Any, device: torch.device | None = None, strategy: Strategy | None = None) -> None:
        self._dataloader = dataloader
        self._device = device
        self._strategy = strategy
        self._num_iter_calls = 0  # epochs started; the epoch being iterated is this minus one
        self._batches_yielded = 0  # of the epoch being iterated
        self._epoch_finished = True
        self._epoch_start_rng: dict[str, Any] | None = None
        self._resume: _Resume | None = None

    @property
    def device(self) -> torch.device | None:
        return self._device

    def __len__(self) -> int:
        return len(self._dataloader)

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        epoch = self._num_iter_calls
        self._set_epoch(epoch)
        self._num_iter_calls = epoch + 1
        self._epoch_finished = False
        batches: Iterable[Any]
        if resume is None or resume.epoch_start_rng is None:  # the DataLoader resumes itself
            self._batches_yielded = 0 if resume is None else resume.skip
            # What the DataLoader draws at the start of an epoch (its base seed, a shuffling
            # sampler's seed) comes from these generators: kept so a resume can draw it again.
            self._epoch_start_rng = _capture_generators(self._generators())
            batches = self._dataloader
        else:
            self._batches_yielded = resume.skip
            self._epoch_start_rng = resume.epoch_start_rng
            batches = self._resumed_batches(resume.skip, resume.epoch_start_rng)
        device, strategy = self._device, self._strategy
        if device is None or strategy is None:
            for batch in batches:
                self._batches_yielded += 1
                yield batch
        else:
            for batch in batches:
                self._batches_yielded += 1
                yield strategy.batch_to_device(batch, device)
        self._epoch_finished = True

    def state_dict(self) -> dict[str, Any]:
        """The data position: ``{"epoch", "batches_yielded", "ranks"}``.

        ``epoch`` is the epoch the next batch comes from and ``batches_yielded`` how many of its
        batches were already handed out (0 between epochs). ``ranks`` holds, per global rank, the
        states of the generators the DataLoader draws from at the start of an epoch (torch's
        global CPU generator and any ``generator=`` of the loader or its sampler) as they were
        when this epoch began, and the loader's own generators as they are now. Resuming sets
        the first ones again, lets the sampler draw this epoch's order, skips the consumed
        batches' indices (their data is never loaded) and puts the generators back as they were
        before the resumed iteration started.

        A collective under ``torch.distributed``: call it on every process (``fabric.save`` does).
        """
        if self._resume is not None:  # loaded, not iterated yet: still the loaded position
            epoch, yielded, start = self._resume.epoch, self._resume.skip, self._resume.epoch_start_rng
        elif self._epoch_finished:
            epoch, yielded, start = self._num_iter_calls, 0, None
        else:
            epoch, yielded, start = self._num_iter_calls - 1, self._batches_yielded, self._epoch_start_rng
        own: dict[str, Any] = {"epoch_start": start, "generators": [g.get_state() for g in self._generators()[1:]]}
        if self._resumes_itself():
            own = {"epoch_start": None, "generators": [], "dataloader": self._dataloader.state_dict()}
        ranks = gather_per_rank(own)
        return {"epoch": epoch, "batches_yielded": yielded, "ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next iteration continue the saved epoch after its last yielded batch.

        :raises ValueError: when the state is not a data position, claims more batches than an
            epoch of this loader has, or comes from another world size mid-epoch.
        """
        if not isinstance(state_dict, dict) or not {"epoch", "batches_yielded", "ranks"} <= set(state_dict):
            raise ValueError(
                "FabricDataLoader.load_state_dict() expects the data position that its state_dict() returned "
                f"(keys 'epoch', 'batches_yielded', 'ranks'), got {_describe(state_dict)}. Check that the checkpoint "
                "key you load into the dataloader is the one you saved it under."
            )
        epoch, skip = int(state_dict["epoch"]), int(state_dict["batches_yielded"])
        length = sized_len(self._dataloader)
        if epoch < 0 or skip < 0 or (length is not None and skip > length):
            raise ValueError(
                f"FabricDataLoader.load_state_dict(): the checkpoint says {skip} batches of epoch {epoch} were "
                f"consumed, but an epoch of this dataloader has {length} batches. Resume with the same dataset, "
                "batch size and number of processes as the saved run."
            )
        ranks = state_dict["ranks"]
        if skip == 0 and len(ranks) != _world_size():
            own = None  # between epochs nothing is per process: any world size continues from here
        else:
            own = own_rank_entry(ranks, "FabricDataLoader.load_state_dict()")
        resumes_itself = self._resumes_itself()
        if own is not None and resumes_itself != ("dataloader" in own):
            saved, now = ("kept", "does not") if "dataloader" in own else ("did not keep", "does")
            raise ValueError(
                f"FabricDataLoader.load_state_dict(): the saved DataLoader {saved} its own position (state_dict/"
                f"load_state_dict, as torchdata's StatefulDataLoader), this {type(self._dataloader).__name__} {now}. "
                "Resume with the same kind of DataLoader as the saved run."
            )
        if own is not None and resumes_itself:
            self._dataloader.load_state_dict(own["dataloader"])
        elif own is not None:
            generators = self._generators()[1:]
            if len(own["generators"]) != len(generators):
                raise ValueError(
                    f"FabricDataLoader.load_state_dict(): the saved dataloader drew from {len(own['generators'])} "
                    f"torch.Generator(s) of its own (DataLoader or sampler generator=...), this one from "
                    f"{len(generators)}. Build the DataLoader as in the saved run."
                )
            for generator, saved in zip(generators, own["generators"], strict=True):
                generator.set_state(saved)
        self._num_iter_calls = epoch
        self._epoch_finished = True
        self._resume = None
        if skip > 0 and own is not None:
            self._resume = _Resume(epoch, skip, None if resumes_itself else own["epoch_start"])

    def _resumes_itself(self) -> bool:
        """Whether the user's DataLoader saves and restores its own position (``StatefulDataLoader``)."""
        inner = self._dataloader
        return callable(getattr(inner, "state_dict", None)) and callable(getattr(inner, "load_state_dict", None))

    def _set_epoch(self, epoch: int) -> None:
        # Samplers that shuffle per epoch (DistributedSampler) need set_epoch, whether they sit
        # on the loader or inside its batch sampler; each is told once.
        batch_sampler = getattr(self._dataloader, "batch_sampler", None)
        candidates = (
            getattr(self._dataloader, "sampler", None),
            batch_sampler,
            getattr(batch_sampler, "sampler", None),
        )
        told: set[int] = set()
        for sampler in candidates:
            set_epoch = getattr(sampler, "set_epoch", None)
            if callable(set_epoch) and id(sampler) not in told:
                told.add(id(sampler))
                set_epoch(epoch)

    def _generators(self) -> list[torch.Generator]:
        """torch's default CPU generator, then the loader's and its samplers' own generators (each once)."""
        loader = self._dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        found: list[torch.Generator] = [torch.default_generator]
        for owner in (loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
        return found

    def _resumed_batches(self, skip: int, epoch_start_rng: dict[str, Any]) -> Iterable[Any]:
        """The rest of the resumed epoch, drawn in the saved run's order."""
        loader = self._dataloader
        length = sized_len(loader)
        if length is not None and skip >= length:
            return ()  # the epoch was used up: the next iteration starts the next one
        generators = self._generators()
        now = _capture_generators(generators)
        _restore_generators(generators, epoch_start_rng)

        def after_skip() -> None:
            _restore_generators(generators, now)

        skipping = _skipping_loader(loader, skip, after_skip)
        if skipping is not None:
            return skipping
        # No sampler to slice (an iterable dataset, a loader that cannot be re-created):
        # draw the consumed batches and drop them, which loads their data.
        iterator: Iterator[Any] = iter(loader)
        for _ in range(skip):
            if next(iterator, _EXHAUSTED) is _EXHAUSTED:
                break
        after_skip()
        return iterator

    def __getattr__(self, name: str) -> Any:
        if name == "_dataloader":
            raise AttributeError(name)
        return getattr(self._dataloader, name)


@dataclass(frozen=True)
class _Resume:
    """A data position loaded into a FabricDataLoader and not iterated yet."""

    epoch: int
    skip: int
    epoch_start_rng: dict[str, Any] | None  # None: the user's DataLoader resumes itself


_EXHAUSTED = object()


class _SkipFirst:
    """An index sampler that leaves out the first ``skip`` items of another.

    Only indices are drawn for the skipped items, so their data is never loaded. The
    ``after_skip`` callback runs once they are drawn, before the first item is handed out.
    """

    def __init__(self, sampler: Any, skip: int, after_skip: Callable[[], None]) -> None:
        self.sampler = sampler
        self.skip = skip
        self.after_skip = after_skip

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.sampler)
        for _ in range(self.skip):
            if next(iterator, _EXHAUSTED) is _EXHAUSTED:
                break
        self.after_skip()
        yield from iterator


def _skipping_loader(loader: Any, skip: int, after_skip: Callable[[], None]) -> Iterator[Any] | None:
    """A one-epoch copy of ``loader`` whose index sampler skips ``skip`` batches; ``None`` when there is none."""
    from torch.utils.data import DataLoader

    from fabric_core.data import _recreate

    if not isinstance(loader, DataLoader) or loader._dataset_kind == 1:  # 1: an IterableDataset
        return None
    if loader.batch_sampler is not None:
        replacement: dict[str, Any] = {"batch_sampler": _SkipFirst(loader.batch_sampler, skip, after_skip)}
    else:
        replacement = {"sampler": _SkipFirst(loader.sampler, skip, after_skip)}
    # One epoch only: workers kept alive for later epochs would belong to a copy used once.
    replacement["persistent_workers"] = False
    try:
        return iter(_recreate(loader, replacement))
    except TypeError:  # a subclass whose arguments are not stored as attributes
        return None


def _world_size() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if distributed else 1


def _capture_generators(generators: list[torch.Generator]) -> dict[str, Any]:
    return {"torch": generators[0].get_state(), "generators": [g.get_state() for g in generators[1:]]}


def _restore_generators(generators: list[torch.Generator], states: dict[str, Any]) -> None:
    generators[0].set_state(states["torch"])
    for generator, state in zip(generators[1:], states["generators"], strict=True):
        generator.set_state(state)


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


def unwrap(obj: Any) -> Any:
    """The user's object behind a Fabric wrapper (compiled modules included)."""
    if isinstance(obj, FabricModule):
        return obj._original_module
    compiled = getattr(obj, "_orig_mod", None)
    if isinstance(compiled, FabricModule):
        return compiled._original_module
    if isinstance(obj, FabricOptimizer):
        return obj.optimizer
    if isinstance(obj, FabricDataLoader):
        return obj._dataloader
    return obj


def unwrap_for_checkpoint(obj: Any) -> Any:
    """The object whose state ``fabric.save``/``fabric.load`` handle for ``obj``.

    That is :func:`unwrap`'s user object, except for a :class:`FabricDataLoader`, which stays
    itself: it holds the data position (a plain DataLoader has no state to save).
    """
    return obj if isinstance(obj, FabricDataLoader) else unwrap(obj)


def is_wrapped(obj: object) -> bool:
    """Whether ``obj`` was returned by ``fabric.setup*`` (a module, optimizer or dataloader)."""
    if isinstance(getattr(obj, "_orig_mod", None), FabricModule):
        return True
    return isinstance(obj, (FabricModule, FabricOptimizer, FabricDataLoader))


def unwrap_objects(collection: Any) -> Any:
    """``collection`` (a model, optimizer, dataloader, or a dict/list/tuple of them) with every Fabric wrapper
    replaced by the user's own object, as Lightning's ``_unwrap_objects``."""
    if isinstance(collection, dict):
        return {key: unwrap_objects(value) for key, value in collection.items()}
    if isinstance(collection, (list, tuple)) and not hasattr(collection, "_fields"):
        return type(collection)(unwrap_objects(value) for value in collection)
    return unwrap(collection)


# Lightning Fabric's names for these, for scripts that import them from ``lightning.fabric.wrappers``.
_FabricModule = FabricModule
_FabricOptimizer = FabricOptimizer
_FabricDataLoader = FabricDataLoader
_unwrap_objects = unwrap_objects


def _unwrap_compiled(obj: Any) -> tuple[Any, dict[str, Any] | None]:
    """Lightning's helper: the module inside a ``torch.compile`` wrapper, and the compile arguments
    (not recorded here: ``None``)."""
    inner = getattr(obj, "_orig_mod", None)
    return (inner, None) if isinstance(inner, nn.Module) else (obj, None)
