"""``strategy="xla_fsdp"``: torch_xla's fully sharded data parallel (Lightning's ``XLAFSDPStrategy``).

The model is wrapped in ``XlaFullyShardedDataParallel``, which shards and flattens its
parameters. So, as in Lightning, the optimizer must be made *after* the model is set up
(``fabric.setup_module(model)``, then the optimizer, then ``fabric.setup_optimizers``); a
joint ``fabric.setup(model, optimizer)`` is refused, since that optimizer would update the
parameters FSDP just replaced. FSDP reduce-scatters the gradients itself, so a step is
``optimizer.step()`` followed by ``torch_xla.sync()`` (no ``xm.optimizer_step`` reduction).

Checkpoints are *sharded*: ``fabric.save(path, state)`` makes ``path`` a directory in which
every rank writes its own file, ``checkpoint_rank-<rank>-of-<world size>.pth`` (Lightning's
layout), holding its shard of each model with FSDP's ``shard_metadata`` (what
``torch_xla.distributed.fsdp.consolidate_sharded_model_checkpoints`` needs to build full
weights), its optimizer state and the other values. Each file is written atomically; the
directory as a whole is not swapped in at once. A load reads the file of its own rank, so it
needs the world size of the save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fabric_core.strategies.checkpoint_state import check_missing, restore_into
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_xla.strategies.xla import XLAStrategy


class XLAFSDPStrategy(XLAStrategy):
    """Fully sharded data parallel on XLA devices.

    :param auto_wrap_policy: which submodules get their own FSDP unit (passed to
        ``XlaFullyShardedDataParallel``); the whole model is one unit when ``None``.
    :param state_dict_type: ``"sharded"`` (the only one: one file per rank).
    :param kwargs: other arguments of ``XlaFullyShardedDataParallel`` (``compute_dtype``, ...).
    """

    strategy_name = "xla_fsdp"

    def __init__(
        self,
        accelerator: Any = None,
        parallel_devices: Any = None,
        checkpoint_io: Any = None,
        precision: Any = None,
        auto_wrap_policy: Any = None,
        state_dict_type: str = "sharded",
        start_method: str = "spawn",
        **kwargs: Any,
    ) -> None:
        if state_dict_type != "sharded":
            raise ValueError(
                f"XLAFSDPStrategy(state_dict_type={state_dict_type!r}): fabric-xla saves sharded checkpoints only "
                "(one file per rank). Build full weights from them with "
                "torch_xla.distributed.fsdp.consolidate_sharded_model_checkpoints."
            )
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            checkpoint_io=checkpoint_io,
            precision=precision,
            sync_module_states=False,  # FSDP broadcasts nothing: each rank shards what it was given
            start_method=start_method,
        )
        self._auto_wrap_policy = auto_wrap_policy
        self._fsdp_kwargs = kwargs
        self._wrappers: dict[int, Module] = {}  # id(user's module) -> its FSDP wrapper

    def setup_module_and_optimizers(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any = None
    ) -> tuple[Module, list[Optimizer], Any]:
        if optimizers:
            raise RuntimeError(
                "strategy='xla_fsdp' cannot set up a model and its optimizer together: FSDP replaces the model's "
                "parameters with sharded ones, which an optimizer made before would never update. Set the model up "
                "first, then make the optimizer from the set-up model: model = fabric.setup_module(model); "
                "optimizer = torch.optim.AdamW(model.parameters()); optimizer = fabric.setup_optimizers(optimizer)."
            )
        return self.setup_module(module), [], scheduler

    def setup_module(self, module: Module) -> Module:
        from torch_xla.distributed.fsdp import XlaFullyShardedDataParallel

        if isinstance(module, XlaFullyShardedDataParallel):
            wrapped: Module = module
        else:
            wrapped = XlaFullyShardedDataParallel(module, auto_wrap_policy=self._auto_wrap_policy, **self._fsdp_kwargs)
        self._wrappers[id(module)] = wrapped
        return wrapped

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        sharded = {id(p) for wrapper in self._wrappers.values() for p in wrapper.parameters()}
        if not any(id(p) in sharded for group in optimizer.param_groups for p in group["params"]):
            raise ValueError(
                "strategy='xla_fsdp': this optimizer holds none of the sharded parameters of a set-up model. Make "
                "it after fabric.setup_module(model), from that model's parameters."
            )
        return optimizer

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        import torch_xla

        result = optimizer.step(**kwargs)
        torch_xla.sync()  # the end of this step's XLA graph
        return result

    def clip_gradients_norm(
        self,
        module: Module,
        optimizer: Optimizer,
        max_norm: float | int,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor:
        # The norm over every shard: FSDP's own method all-reduces the shards' norms.
        wrapper: Any = self._wrapper_of(module)
        return wrapper.clip_grad_norm_(max_norm=max_norm, norm_type=norm_type)  # type: ignore[no-any-return]

    def clip_gradients_value(self, module: Module, optimizer: Optimizer, clip_val: float | int) -> None:
        raise NotImplementedError(
            "strategy='xla_fsdp' does not clip gradients by value (each rank holds a shard); use "
            "fabric.clip_gradients(model, optimizer, max_norm=...)."
        )

    def _wrapper_of(self, module: Module) -> Module:
        wrapper = self._wrappers.get(id(module))
        if wrapper is None:
            if any(module is w for w in self._wrappers.values()):
                return module
            raise ValueError("strategy='xla_fsdp': this model was not set up with fabric.setup_module().")
        return wrapper

    # -- checkpoints: one file per rank ------------------------------------------------------------

    def _rank_file(self, path: Path) -> Path:
        return path / f"checkpoint_rank-{self.global_rank:08d}-of-{self.world_size:08d}.pth"

    def get_module_state_dict(self, module: Module) -> dict[str, Any]:
        wrapper: Any = self._wrapper_of(module)
        return {"model": wrapper.state_dict(), "shard_metadata": wrapper.get_shard_metadata()}

    def load_module_state_dict(self, module: Module, state_dict: dict[str, Any], strict: bool = True) -> None:
        self._wrapper_of(module).load_state_dict(state_dict["model"], strict=strict)

    def save_checkpoint(
        self,
        path: str | Path,
        state: dict[str, Any],
        filter: dict[str, Any] | None = None,
        storage_options: Any = None,
    ) -> None:
        path = Path(path)
        if path.is_file():
            raise FileExistsError(
                f"fabric.save({str(path)!r}) with strategy='xla_fsdp' writes a directory of per-rank files, but "
                "a file is there. Choose another path, or remove the file."
            )
        checkpoint = self.convert_state(state, filter)
        if self.is_global_zero:
            path.mkdir(parents=True, exist_ok=True)
        self.barrier("fabric.save.mkdir")
        self.checkpoint_io.save_checkpoint(checkpoint, self._rank_file(path), storage_options=storage_options)
        self.barrier("fabric.save")

    def load_checkpoint(
        self,
        path: str | Path,
        state: dict[str, Any] | Module | Optimizer | None = None,
        strict: bool = True,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        path = Path(path)
        file = self._rank_file(path)
        if path.is_dir() and not file.exists():
            present = sorted(p.name for p in path.glob("checkpoint_rank-*.pth"))
            raise FileNotFoundError(
                f"fabric.load({str(path)!r}): strategy='xla_fsdp' rank {self.global_rank} of {self.world_size} "
                f"looks for {file.name}, which is not there (the directory holds {present or 'no rank files'}). "
                "Load with the number of devices the checkpoint was saved with."
            )
        checkpoint = self.checkpoint_io.load_checkpoint(file if path.is_dir() else path, weights_only=weights_only)
        if state is None:
            return checkpoint
        if isinstance(state, Module):
            self.load_module_state_dict(state, checkpoint, strict=strict)
            return {}
        if isinstance(state, Optimizer):
            state.load_state_dict(checkpoint)
            return {}
        check_missing(path, state, checkpoint, strict)
        return restore_into(state, checkpoint, lambda module, value: self.load_module_state_dict(module, value, strict))
