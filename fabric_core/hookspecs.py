"""The hook contract between fabric-core and its plugins.

Every hook is named ``fabric_*`` and belongs to the pluggy project ``fabric_core``; the
entry-point group that add-ons declare is the same name. Hooks come in three families:

* **Registration hooks** (``fabric_register_*``) run once per process during discovery, on
  the process-wide discovery manager. Each receives a :class:`~fabric_core.registry.Registry`
  to add named entries to.
* **Behaviour hooks** are the seams of a training run and run on each ``Fabric``'s own
  plugin manager. For the single-owner ones (setup, backward, step, checkpoint) exactly one
  non-wrapper implementation may exist: the active strategy. Any other plugin may wrap them
  with ``@hookimpl(wrapper=True)``. ``fabric_log`` is broadcast to every logger.
* **Event hooks** (``fabric_on_*``) notify callbacks; they are broadcast and their return
  values are ignored.

Implementations may accept any subset of a hook's arguments, as usual with pluggy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from torch import Tensor
    from torch.nn import Module
    from torch.optim import Optimizer

    from fabric_core.fabric import Fabric
    from fabric_core.registry import Registry

PROJECT_NAME = "fabric_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# --------------------------------------------------------------------------------------
# Registration hooks: called once per process, during discovery.
# --------------------------------------------------------------------------------------


@hookspec
def fabric_register_accelerators(registry: Registry) -> None:
    """Add accelerators (``"cpu"``, ``"cuda"``, ...) to ``registry``.

    :param registry: call ``registry.add(name, factory, ...)`` for each accelerator.

    Called once per process during discovery, for every loaded plugin; broadcast; the
    return value is ignored. Must not import the accelerator's backend.
    """


@hookspec
def fabric_register_strategies(registry: Registry) -> None:
    """Add strategies (``"single_device"``, ``"deepspeed_stage_3"``, ...) to ``registry``.

    :param registry: call ``registry.add(name, factory, init_params=...)`` for each name;
        one factory may serve several names with different ``init_params``.

    Called once per process during discovery; broadcast; the return value is ignored.
    """


@hookspec
def fabric_register_precisions(registry: Registry) -> None:
    """Add precision plugins (``"32-true"``, ``"bf16-mixed"``, ...) to ``registry``.

    Called once per process during discovery; broadcast; the return value is ignored.
    """


@hookspec
def fabric_register_environments(registry: Registry) -> None:
    """Add cluster environments (``"local"``, ``"slurm"``, ...) to ``registry``.

    An environment class takes part in automatic detection through its ``detect()``
    class method, in the order of the entries' ``priority`` (higher first).

    Called once per process during discovery; broadcast; the return value is ignored.
    """


@hookspec
def fabric_register_loggers(registry: Registry) -> None:
    """Add metric loggers (``"csv"``, ``"tensorboard"``, ...) selectable by name.

    Called once per process during discovery; broadcast; the return value is ignored.
    """


@hookspec
def fabric_register_callbacks(registry: Registry) -> None:
    """Add callbacks selectable by name in ``Fabric(callbacks=["name"])``.

    Called once per process during discovery; broadcast; the return value is ignored.
    """


# --------------------------------------------------------------------------------------
# Behaviour hooks: called on each Fabric's own plugin manager.
# --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def fabric_setup_model(
    fabric: Fabric, module: Module, optimizers: list[Optimizer], scheduler: Any
) -> tuple[Module, list[Optimizer], Any]:
    """Prepare ``module`` (and, jointly, its ``optimizers`` and ``scheduler``) for training.

    :param module: the user's model, not yet wrapped by Fabric.
    :param optimizers: the optimizers set up together with it; empty for ``setup_module``.
    :param scheduler: the learning-rate scheduler passed to ``setup``, or ``None``.
    :return: the module to run forward through, the optimizers to step, the scheduler.

    Called once per ``fabric.setup``/``fabric.setup_module`` call. Single owner
    (``firstresult``): answered by the active strategy; other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_setup_optimizer(fabric: Fabric, optimizer: Optimizer) -> Optimizer:
    """Prepare an optimizer set up on its own, after its model (``setup_optimizers``).

    :return: the optimizer to step.

    Called once per optimizer passed to ``fabric.setup_optimizers``. Single owner
    (``firstresult``): answered by the active strategy; other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_backward(fabric: Fabric, tensor: Tensor, module: Module | None, args: tuple, kwargs: dict) -> Any:
    """Run the backward pass of ``tensor`` (scaling the loss where the precision needs it).

    :param module: the module the loss came from, when known (strategies like DeepSpeed
        need it), else ``None``.
    :param args: extra positional arguments for ``Tensor.backward``.
    :param kwargs: extra keyword arguments for ``Tensor.backward``.
    :return: anything not ``None`` (the owner returns ``True``); the result is ignored.

    Called once per ``fabric.backward``. Single owner (``firstresult``): the active strategy.
    """


@hookspec(firstresult=True)
def fabric_optimizer_step(fabric: Fabric, optimizer: Optimizer, kwargs: dict) -> Any:
    """Step ``optimizer`` (unscaling and skipping non-finite steps where the precision needs it).

    :param optimizer: the user's optimizer (not Fabric's wrapper).
    :param kwargs: keyword arguments of ``optimizer.step`` (for example ``closure``).
    :return: what ``optimizer.step`` returned (the closure's loss, or ``None``).

    Called once per ``optimizer.step()`` on a Fabric-wrapped optimizer. Single owner
    (``firstresult``): the active strategy.
    """


@hookspec(firstresult=True)
def fabric_save_checkpoint(fabric: Fabric, path: Path, state: dict[str, Any], filter: dict[str, Any] | None) -> bool:
    """Write ``state`` (live modules, optimizers and plain values) to ``path``.

    :param filter: per top-level key, a ``(key, value) -> bool`` function choosing which
        entries of that object's state dict are saved.
    :return: ``True`` once written.

    Called once per ``fabric.save`` on every rank. Single owner: the active strategy.
    """


@hookspec(firstresult=True)
def fabric_load_checkpoint(
    fabric: Fabric, path: Path, state: dict[str, Any] | None, strict: bool, weights_only: bool
) -> dict[str, Any]:
    """Read the checkpoint at ``path`` into the live objects of ``state``.

    :param state: live objects to restore in place; ``None`` returns the whole checkpoint.
    :param strict: whether a key of ``state`` missing from the checkpoint is an error.
    :param weights_only: passed to ``torch.load``; ``True`` unless the caller opted out.
    :return: what the checkpoint holds beyond ``state`` (or all of it when ``state`` is
        ``None``).

    Called once per ``fabric.load`` on every rank. Single owner: the active strategy.
    """


@hookspec
def fabric_log(fabric: Fabric, metrics: Mapping[str, Any], step: int | None) -> None:
    """Record ``metrics`` (names to Python scalars) at ``step``.

    Called once per ``fabric.log``/``fabric.log_dict``; broadcast to every logger. Loggers
    decide themselves whether they write on this rank.
    """


# --------------------------------------------------------------------------------------
# Event hooks: broadcast to callbacks, return values ignored.
# --------------------------------------------------------------------------------------


@hookspec
def fabric_on_launch(fabric: Fabric) -> None:
    """The processes are up: called once per process, when Fabric has set it up: at the start of
    ``fabric.launch``, in ``Fabric()`` under ``fabric run``, or else at the first ``setup``,
    ``init_module``, collective or checkpoint."""


@hookspec
def fabric_on_after_setup(fabric: Fabric, module: Module) -> None:
    """A model was set up: called once per ``setup``/``setup_module``, with the wrapped module."""


@hookspec
def fabric_on_before_backward(fabric: Fabric, loss: Tensor) -> None:
    """Called on each ``fabric.backward``, before the backward pass."""


@hookspec
def fabric_on_after_backward(fabric: Fabric) -> None:
    """Called on each ``fabric.backward``, after the backward pass."""


@hookspec
def fabric_on_before_optimizer_step(fabric: Fabric, optimizer: Optimizer) -> None:
    """Called on each step of a Fabric-wrapped optimizer, before it steps."""


@hookspec
def fabric_on_after_optimizer_step(fabric: Fabric, optimizer: Optimizer) -> None:
    """Called on each step of a Fabric-wrapped optimizer, after it stepped."""


@hookspec
def fabric_on_save_checkpoint(fabric: Fabric, path: Path, state: dict[str, Any]) -> None:
    """Called once per ``fabric.save``, before writing; ``state`` may be modified in place."""


@hookspec
def fabric_on_load_checkpoint(fabric: Fabric, path: Path, checkpoint: dict[str, Any]) -> None:
    """Called once per ``fabric.load``/``load_raw``, after reading, with what the file held."""


@hookspec
def fabric_on_teardown(fabric: Fabric, status: str) -> None:
    """Called once when the run ends: after ``launch(fn)`` returns, or at interpreter exit.

    ``status`` is ``"failed"`` when ``launch(fn)`` raised or the script ended with an
    uncaught exception, else ``"success"``; loggers pass it to ``finalize``."""


#: Behaviour hooks that exactly one non-wrapper implementation (the strategy) answers.
SINGLE_OWNER_HOOKS: tuple[str, ...] = (
    "fabric_setup_model",
    "fabric_setup_optimizer",
    "fabric_backward",
    "fabric_optimizer_step",
    "fabric_save_checkpoint",
    "fabric_load_checkpoint",
)

#: Registration hooks, keyed by the registry kind they fill.
REGISTRATION_HOOKS: dict[str, str] = {
    "accelerator": "fabric_register_accelerators",
    "strategy": "fabric_register_strategies",
    "precision": "fabric_register_precisions",
    "environment": "fabric_register_environments",
    "logger": "fabric_register_loggers",
    "callback": "fabric_register_callbacks",
}
