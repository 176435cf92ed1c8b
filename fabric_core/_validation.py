"""The checks ``Fabric``'s methods make on their arguments, before anything runs.

Each function raises (or warns) with one message that says what was passed, why it cannot
be used and what to pass instead; the methods in :mod:`fabric_core.fabric` call them first
so that their own bodies read as what they do.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch.nn import Module
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from fabric_core.strategies.launchers.launcher import is_interactive
from fabric_core.strategies.strategy import is_stateful
from fabric_core.wrappers import FabricDataLoader, FabricOptimizer, is_wrapped, unwrap, unwrap_for_checkpoint

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


def check_launch_callable(function: Any) -> None:
    """``fabric.launch(function)`` takes a function (or nothing)."""
    if function is not None and not callable(function):
        raise TypeError(
            f"fabric.launch({function!r}): expected a function taking the Fabric object as its first argument."
        )


def check_launch_signature(function: Callable[..., Any] | None) -> None:
    """The function given to ``fabric.launch`` takes the Fabric object as its first argument."""
    if function is None:
        return
    parameters = [p for p in inspect.signature(function).parameters.values() if p.kind is not p.VAR_KEYWORD]
    if not parameters:
        raise TypeError(
            f"fabric.launch({getattr(function, '__name__', function)}): the function must take the Fabric "
            "object as its first argument, for example def train(fabric): ..."
        )


def check_setup(module: Any, optimizers: Sequence[Any]) -> None:
    """``fabric.setup(module, *optimizers)``: a model not set up before, then optimizers."""
    if isinstance(module, (FabricOptimizer, FabricDataLoader, Optimizer)):
        raise TypeError(
            f"fabric.setup() expects a torch.nn.Module first, got {type(module).__name__}. "
            "Call it as fabric.setup(model, optimizer)."
        )
    if is_wrapped(module):
        raise ValueError(
            "This model was already set up by Fabric. Set up each model once; use the object that the "
            "first fabric.setup() returned."
        )
    if not isinstance(module, Module):
        raise TypeError(f"fabric.setup() expects a torch.nn.Module, got {type(module).__name__}.")
    check_optimizers(optimizers)


def check_optimizers(optimizers: Sequence[Any]) -> None:
    """Optimizers not set up before, and no scheduler among them."""
    for optimizer in optimizers:
        if isinstance(optimizer, FabricOptimizer):
            raise ValueError(
                f"The optimizer {type(optimizer.optimizer).__name__} was already set up by Fabric. Set up each "
                "optimizer once."
            )
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Expected torch.optim.Optimizer instances after the model, got {type(optimizer).__name__}. "
                "Pass a learning-rate scheduler as scheduler=..."
            )


def check_dataloader(dataloader: Any) -> None:
    """``fabric.setup_dataloaders``: a ``DataLoader`` not set up before."""
    if isinstance(dataloader, FabricDataLoader):
        raise ValueError("This dataloader was already set up by Fabric. Set up each dataloader once.")
    if not isinstance(dataloader, DataLoader):
        raise TypeError(
            f"fabric.setup_dataloaders() expects torch.utils.data.DataLoader objects, got "
            f"{type(dataloader).__name__}. Wrap the data in one (DataLoader(dataset, batch_size=...)), or "
            "iterate it yourself and move batches with fabric.to_device()."
        )


def check_clip_arguments(clip_val: float | int | None, max_norm: float | int | None) -> None:
    """``fabric.clip_gradients`` clips by value or by norm: exactly one of the two."""
    if (clip_val is None) == (max_norm is None):
        raise ValueError(
            "fabric.clip_gradients() needs exactly one of clip_val (clip each gradient value) or max_norm "
            "(clip the total norm)."
        )


def check_metrics(metrics: Any) -> None:
    """``fabric.log_dict`` takes a mapping of names to values."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"fabric.log_dict() expects a mapping of names to values, got {type(metrics).__name__}.")


def check_save_arguments(state: Any, filter: Any) -> None:
    """``fabric.save(path, state, filter)``: a dict of state, and a filter of functions for keys of it.

    A filter for a plain value (not a model, optimizer, dict or stateful object) chooses
    nothing, so it is ignored with a warning that points at the caller's ``fabric.save``.
    """
    if not isinstance(state, dict):
        raise TypeError(f"fabric.save(path, state): state must be a dict, got {type(state).__name__}.")
    if filter is None:
        return
    if not isinstance(filter, dict):
        raise TypeError(f"fabric.save(filter=...) expects a dict of key to function, got {filter!r}.")
    unknown = sorted(set(filter) - set(state))
    if unknown:
        raise ValueError(f"fabric.save(filter=...) names keys {unknown} that are not in state {sorted(state)}.")
    for key, function in filter.items():
        if not callable(function):
            raise TypeError(f"fabric.save(filter={{{key!r}: ...}}): expected a function, got {function!r}.")
        value = unwrap_for_checkpoint(state[key])
        if not isinstance(value, (Module, Optimizer, dict)) and not is_stateful(value):
            warnings.warn(
                f"fabric.save(filter={{{key!r}: ...}}) is ignored: a filter chooses entries of a state "
                f"dict, but state[{key!r}] is a plain {type(value).__name__}, so it is saved whole. Remove "
                f"{key!r} from the filter to silence this.",
                UserWarning,
                stacklevel=3,  # the caller of fabric.save
            )


def check_load_state(state: Any) -> None:
    """``fabric.load(path, state)``: ``state`` is a dict (or ``None``)."""
    if state is not None and not isinstance(state, dict):
        raise TypeError(
            f"fabric.load(path, state): state must be a dict, got {type(state).__name__}. For a bare model or "
            "optimizer state dict use fabric.load_raw(path, obj)."
        )


def load_raw_target(obj: Any) -> Module | Optimizer:
    """The user's model or optimizer that ``fabric.load_raw(path, obj)`` loads into."""
    target = unwrap(obj)
    if not isinstance(target, (Module, Optimizer)):
        raise TypeError(f"fabric.load_raw(path, obj): obj must be a model or an optimizer, got {type(obj).__name__}.")
    return target


def check_launcher_can_start(strategy: Strategy, function: Callable[..., Any] | None) -> None:
    """The strategy's launcher can start its processes from here, with what ``fabric.launch`` was given."""
    launcher = strategy.launcher
    if launcher is None:
        return
    if not launcher.is_interactive_compatible and is_interactive():
        raise RuntimeError(
            f"{strategy!r} cannot start its processes from an interactive session or notebook. Use "
            "strategy='ddp_notebook' here, or run your code as a script."
        )
    if launcher.requires_function and function is None:
        raise RuntimeError(
            f"{strategy!r} starts new processes that run only the function given to launch(), so "
            "fabric.launch() needs one: fabric.launch(train) with def train(fabric): .... Or use strategy='ddp', "
            "which runs the whole script in every process."
        )


def check_launched(strategy: Strategy, launched: bool, started_outside: bool) -> None:
    """A strategy that starts several processes was launched before models, collectives or checkpoints."""
    if not launched and strategy.launcher is not None and not started_outside:
        processes = max(len(strategy.parallel_devices), 1) * strategy.num_nodes
        raise RuntimeError(
            f"{type(strategy).__name__} runs {processes} processes, but fabric.launch() was not "
            "called. Call fabric.launch() before setting up models, or start the script with `fabric run`."
        )
