"""The hook contract between fabric-core and its plugins.

Every hook is named ``fabric_*`` and belongs to the pluggy project ``fabric_core``; the
entry-point group that add-ons declare is the same name. Hooks come in three families:

* **Registration hooks** (``fabric_register_*``) run once per process during discovery,
  each plugin on a plugin manager of its own. Each receives a
  :class:`~fabric_core.registry.Registry` (or, for ``fabric_register_commands``, a
  :class:`~fabric_core.commands.Commands`) to add named entries to.
* **Behaviour hooks** are the seams of a training run and run on each ``Fabric``'s own
  plugin manager. For the single-owner ones (setup, backward, step, checkpoint) exactly one
  non-wrapper implementation may exist: the active strategy. Any other plugin may wrap them
  with ``@hookimpl(wrapper=True)``. ``fabric_log`` is broadcast to every logger.
* **Event hooks** (``fabric_on_*``) notify callbacks; they are broadcast and their return
  values are ignored.

Every docstring has the same shape: what the hook is for, its ``:param:``s, then five
fields, ``When:``, ``How often:``, ``Call:`` (broadcast or firstresult), ``Returns:`` and
``Owner:``. docs/reference/hooks.md shows the same fields for each hook, and
``tests/test_hookspecs.py`` fails when the two drift apart.

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

    from fabric_core.commands import Commands
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

    When: during discovery, on the first ``Fabric()`` or ``fabric`` command of the process.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_strategies(registry: Registry) -> None:
    """Add strategies (``"single_device"``, ``"deepspeed_stage_3"``, ...) to ``registry``.

    :param registry: call ``registry.add(name, factory, init_params=...)`` for each name;
        one factory may serve several names with different ``init_params``.

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_precisions(registry: Registry) -> None:
    """Add precision plugins (``"32-true"``, ``"bf16-mixed"``, ...) to ``registry``.

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_environments(registry: Registry) -> None:
    """Add cluster environments (``"local"``, ``"slurm"``, ...) to ``registry``.

    An environment class takes part in automatic detection through its ``detect()``
    class method, in the order of the entries' ``priority`` (higher first).

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_loggers(registry: Registry) -> None:
    """Add metric loggers (``"csv"``, ``"tensorboard"``, ...) selectable by name.

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_callbacks(registry: Registry) -> None:
    """Add callbacks selectable by name in ``Fabric(callbacks=["name"])``.

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
    """


@hookspec
def fabric_register_commands(commands: Commands) -> None:
    """Add subcommands to the ``fabric`` command line, or checkpoint layouts to ``fabric consolidate``.

    :param commands: call ``commands.add(name, run, help=...)`` for ``fabric <name>``, or
        ``commands.add_checkpoint_format(name, detect=..., consolidate=..., description=...)``
        (see :mod:`fabric_core.commands`).

    When: during discovery.
    How often: once per process, for each loaded plugin.
    Call: broadcast.
    Returns: nothing; the return value is ignored.
    Owner: any number of implementations (one per plugin).
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

    When: in ``fabric.setup(...)`` and ``fabric.setup_module(...)``, before ``fabric_on_after_setup``.
    How often: once per call.
    Call: firstresult.
    Returns: ``(module, optimizers, scheduler)``: the module to run forward through, the optimizers to
        step, the scheduler.
    Owner: single owner (the strategy); other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_setup_optimizer(fabric: Fabric, optimizer: Optimizer) -> Optimizer:
    """Prepare an optimizer set up on its own, after its model (``setup_optimizers``).

    :return: the optimizer to step.

    When: in ``fabric.setup_optimizers(...)``. Optimizers passed to ``fabric.setup`` go through
        ``fabric_setup_model`` instead.
    How often: once per optimizer passed to ``setup_optimizers``.
    Call: firstresult.
    Returns: the optimizer to step. Fabric wraps it.
    Owner: single owner (the strategy); other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_backward(fabric: Fabric, tensor: Tensor, module: Module | None, args: tuple, kwargs: dict) -> Any:
    """Run the backward pass of ``tensor`` (scaling the loss where the precision needs it).

    :param module: the module the loss came from, when known (strategies like DeepSpeed
        need it), else ``None``.
    :param args: extra positional arguments for ``Tensor.backward``.
    :param kwargs: extra keyword arguments for ``Tensor.backward``.
    :return: anything not ``None`` (the owner returns ``True``); the result is ignored.

    When: in ``fabric.backward(...)``, between ``fabric_on_before_backward`` and
        ``fabric_on_after_backward``.
    How often: once per ``fabric.backward`` call.
    Call: firstresult.
    Returns: anything other than ``None`` (the strategy returns ``True``); Fabric ignores it.
    Owner: single owner (the strategy); other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_optimizer_step(fabric: Fabric, optimizer: Optimizer, kwargs: dict) -> Any:
    """Step ``optimizer`` (unscaling and skipping non-finite steps where the precision needs it).

    :param optimizer: the user's optimizer (not Fabric's wrapper).
    :param kwargs: keyword arguments of ``optimizer.step`` (for example ``closure``).
    :return: what ``optimizer.step`` returned (the closure's loss, or ``None``).

    When: in ``optimizer.step()`` on an optimizer that Fabric set up, between
        ``fabric_on_before_optimizer_step`` and ``fabric_on_after_optimizer_step``.
    How often: once per step.
    Call: firstresult.
    Returns: what ``optimizer.step`` returned (the closure's loss, or ``None``), which the wrapped
        ``optimizer.step()`` returns in turn.
    Owner: single owner (the strategy); other plugins may only wrap it.
    """


@hookspec(firstresult=True)
def fabric_save_checkpoint(
    fabric: Fabric, path: str | Path, state: dict[str, Any], filter: dict[str, Any] | None
) -> bool:
    """Write ``state`` (live modules, optimizers and plain values) to ``path``.

    ``path`` is a ``pathlib.Path`` for a local file (``file://`` URLs too), or the URL string
    (``s3://...``, ``memory://...``) for a remote one (see ``fabric_core.utilities.remote_paths``).

    :param filter: per top-level key, a ``(key, value) -> bool`` function choosing which
        entries of that object's state dict are saved.
    :return: ``True`` once written.

    When: in ``fabric.save(...)``, after ``fabric_on_save_checkpoint`` and before the closing barrier.
    How often: once per ``fabric.save``, on every rank. The owner decides which ranks write.
    Call: firstresult.
    Returns: ``True`` once written.
    Owner: single owner (the strategy); other plugins may only wrap it (to upload the file after the
        save, say).
    """


@hookspec(firstresult=True)
def fabric_load_checkpoint(
    fabric: Fabric, path: str | Path, state: dict[str, Any] | None, strict: bool, weights_only: bool
) -> dict[str, Any]:
    """Read the checkpoint at ``path`` into the live objects of ``state``.

    :param state: live objects to restore in place; ``None`` returns the whole checkpoint.
    :param strict: whether a key of ``state`` missing from the checkpoint is an error.
    :param weights_only: passed to ``torch.load``; ``True`` unless the caller opted out.
    :return: what the checkpoint holds beyond ``state`` (or all of it when ``state`` is
        ``None``).

    When: in ``fabric.load(...)``, before ``fabric_on_load_checkpoint``. ``fabric.load_raw(...)`` does
        not go through this hook.
    How often: once per ``fabric.load``, on every rank.
    Call: firstresult.
    Returns: what the checkpoint holds beyond ``state`` (all of it when ``state`` is ``None``), which
        ``fabric.load`` returns.
    Owner: single owner (the strategy); other plugins may only wrap it.
    """


@hookspec
def fabric_log(fabric: Fabric, metrics: Mapping[str, Any], step: int | None) -> None:
    """Record ``metrics`` (names to Python scalars) at ``step``. Loggers decide themselves whether
    they write on this rank.

    When: in ``fabric.log(...)`` and ``fabric.log_dict(...)``.
    How often: once per call.
    Call: broadcast, to every logger and to any other plugin that implements it.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


# --------------------------------------------------------------------------------------
# Event hooks: broadcast to callbacks, return values ignored.
# --------------------------------------------------------------------------------------


@hookspec
def fabric_on_launch(fabric: Fabric) -> None:
    """The processes are up: Fabric has set this process up (its device and, with several
    processes, its process group).

    When: when Fabric has set the process up: in ``fabric.launch(...)``, in ``Fabric()`` under
        ``fabric run``, or else at the first ``setup``, ``init_module``, collective or checkpoint.
    How often: once per process.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_after_setup(fabric: Fabric, module: Module) -> None:
    """A model was set up: ``module`` is the wrapped model that ``setup`` returns.

    When: at the end of ``fabric.setup(...)`` and ``fabric.setup_module(...)``.
    How often: once per call.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_before_backward(fabric: Fabric, loss: Tensor) -> None:
    """Before the backward pass: ``loss`` is the tensor passed to ``fabric.backward``, before any
    loss scaling.

    When: in ``fabric.backward(...)``, before ``fabric_backward``.
    How often: once per ``fabric.backward`` call.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_after_backward(fabric: Fabric) -> None:
    """After the backward pass: the gradients are computed (under ``16-mixed`` still scaled).

    When: in ``fabric.backward(...)``, after ``fabric_backward``.
    How often: once per ``fabric.backward`` call.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_before_optimizer_step(fabric: Fabric, optimizer: Optimizer) -> None:
    """Before an optimizer step: ``optimizer`` is the user's optimizer, not Fabric's wrapper.

    When: in ``optimizer.step()`` on an optimizer that Fabric set up, before ``fabric_optimizer_step``.
    How often: once per step.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_after_optimizer_step(fabric: Fabric, optimizer: Optimizer) -> None:
    """After an optimizer step; under ``16-mixed`` also when the scaler skipped the step
    because of non-finite gradients.

    When: in ``optimizer.step()``, after ``fabric_optimizer_step``.
    How often: once per step.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_save_checkpoint(fabric: Fabric, path: str | Path, state: dict[str, Any]) -> None:
    """A checkpoint is about to be written: ``state`` is the dict ``fabric_save_checkpoint``
    receives next, so keys added or changed here are saved.

    When: in ``fabric.save(...)``, before ``fabric_save_checkpoint``.
    How often: once per ``fabric.save``, on every rank.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_load_checkpoint(fabric: Fabric, path: str | Path, checkpoint: dict[str, Any]) -> None:
    """A checkpoint was read: ``checkpoint`` is what ``fabric.load`` is about to return (the part
    beyond the requested ``state``, or all of it).

    When: at the end of ``fabric.load(...)``, after ``fabric_load_checkpoint``.
    How often: once per ``fabric.load``, on every rank.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


@hookspec
def fabric_on_teardown(fabric: Fabric, status: str) -> None:
    """The run ended: after ``launch(fn)`` returns or raises, or else at interpreter exit.
    ``status`` is ``"failed"`` when ``launch(fn)`` raised or the script ended with an uncaught
    exception, else ``"success"``; loggers pass it to ``finalize``.

    When: at the end of the run.
    How often: once per ``Fabric``.
    Call: broadcast.
    Returns: nothing; the return values are ignored.
    Owner: any number of implementations.
    """


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
