"""``strategy="deepspeed"`` and its ``deepspeed_stage_*`` siblings: ZeRO through DeepSpeed's engine.

:class:`DeepSpeedStrategy` is a :class:`~fabric_core.strategies.ddp.DDPStrategy` (the same
launcher, process group, collectives and teardown) whose hooks run these steps, in the order
a run meets them:

1. **Selection** (``connect``/``validate``): :mod:`fabric_deepspeed.selection`.
2. **Launch** (``setup_environment``): :mod:`fabric_deepspeed.communication`.
3. **Setup**: one ``deepspeed.initialize`` engine per ``fabric.setup(model, optimizer)``,
   side by side (a GAN's generator and discriminator): :mod:`fabric_deepspeed.engines`.
4. **Training step**: ``backward``, ``optimizer.step()``, ``fabric.clip_gradients`` and
   ``fabric.no_backward_sync`` on the right engine: :mod:`fabric_deepspeed.training_step`.
5. **Checkpoints**: a folder written by every rank: :mod:`fabric_deepspeed.checkpoint`.

The user's scheduler is not handed to DeepSpeed: it is returned unchanged and stepped by the
user, as with every other strategy (Lightning gives it to DeepSpeed, which then steps it on
every ``optimizer.step()`` as well).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from fabric_core.precision.precision import Precision
from fabric_core.strategies.ddp import DDPStrategy
from fabric_core.utilities.init import EmptyInit
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_deepspeed import checkpoint
from fabric_deepspeed._imports import import_deepspeed
from fabric_deepspeed.communication import init_deepspeed_comm
from fabric_deepspeed.config import default_config, load_config, resolve_config, zero_stage
from fabric_deepspeed.engines import (
    EngineRecord,
    destroy_engines,
    initialize_engine,
    one_optimizer,
    record_for_loss,
    record_for_module,
    record_for_optimizer,
)
from fabric_deepspeed.selection import (
    PRECISIONS,
    check_runnable,
    deepspeed_precision,
    registered_name,
    uses_nvme,
)
from fabric_deepspeed.training_step import (
    check_boundary,
    check_clipping,
    check_step,
    gradient_norm,
    not_a_boundary,
    set_clipping,
)


class DeepSpeedStrategy(DDPStrategy):
    """Train with DeepSpeed's ZeRO engine. Arguments and defaults follow Lightning's ``DeepSpeedStrategy``.

    :param zero_optimization: use ZeRO (``stage``); ``False`` runs DeepSpeed without it.
    :param stage: 0 (off), 1 (optimizer state sharded), 2 (and gradients), 3 (and parameters).
    :param remote_device: where ``fabric.init_module()`` creates the parameters under stage 3
        (``"cpu"`` or ``"nvme"``); the device itself when ``None``.
    :param offload_optimizer: keep optimizer state, and run its step, on ``offload_optimizer_device``.
    :param offload_parameters: stage 3: keep parameters on ``offload_params_device``.
    :param offload_params_device: ``"cpu"`` or ``"nvme"``.
    :param offload_optimizer_device: ``"cpu"`` or ``"nvme"``.
    :param nvme_path: the folder NVMe offloading writes to.
    :param params_buffer_count: NVMe parameter offload: buffers in the pool.
    :param params_buffer_size: NVMe parameter offload: size of each buffer.
    :param max_in_cpu: NVMe offload: parameter elements kept in CPU memory.
    :param optimizer_buffer_count: NVMe optimizer offload: buffers in the pool.
    :param block_size: NVMe offload: I/O block size in bytes.
    :param queue_depth: NVMe offload: I/O queue depth.
    :param single_submit: NVMe offload: submit requests one by one.
    :param overlap_events: NVMe offload: overlap requests.
    :param thread_count: NVMe offload: threads per request.
    :param pin_memory: pin offloaded memory on the CPU (CUDA only).
    :param sub_group_size: stage 3: parameters per offloaded sub-group.
    :param contiguous_gradients: copy gradients into one buffer as they are produced.
    :param overlap_comm: overlap gradient reduction with the backward pass.
    :param allgather_partitions: all-gather updated parameters instead of broadcasting them.
    :param reduce_scatter: reduce-scatter gradients instead of all-reducing them.
    :param allgather_bucket_size: elements all-gathered at once.
    :param reduce_bucket_size: elements reduced at once.
    :param zero_allow_untested_optimizer: allow any torch optimizer with ZeRO.
    :param logging_batch_size_per_gpu: ``train_micro_batch_size_per_gpu`` for DeepSpeed's
        throughput logs; by default the batch size of the first dataloader set up, else 1.
    :param config: a DeepSpeed config (a dict, or the path of a JSON file). It replaces every
        default above. When ``None``, ``FABRIC_DEEPSPEED_CONFIG_PATH`` or
        ``PL_DEEPSPEED_CONFIG_PATH`` may name a file. ``"auto"`` fields are filled by Fabric.
    :param logging_level: the level of DeepSpeed's own logger.
    :param loss_scale: fp16: a static loss scale, or 0 for dynamic scaling.
    :param initial_scale_power: fp16: the dynamic scale starts at ``2**initial_scale_power``.
    :param loss_scale_window: fp16: steps between raising the dynamic scale.
    :param hysteresis: fp16: overflows tolerated before lowering the scale.
    :param min_loss_scale: fp16: the lowest dynamic scale.
    :param partition_activations: activation checkpointing: partition the checkpoints.
    :param cpu_checkpointing: activation checkpointing: keep checkpoints on the CPU.
    :param contiguous_memory_optimization: activation checkpointing: contiguous buffers.
    :param synchronize_checkpoint_boundary: activation checkpointing: synchronize at boundaries.
    :param load_full_weights: accepted for Lightning compatibility; a single file passed to
        ``fabric.load`` is always read as full weights (stages 0 to 2).
    :param process_group_backend: ``"gloo"``, ``"nccl"``, ...; gloo on CPU and NCCL on CUDA by default.
    :param timeout: how long collectives wait for the other processes.
    :param exclude_frozen_parameters: leave parameters without gradients out of checkpoints.
    :param shm_comm: on CPU, let DeepSpeed build its shared-memory all-reduce kernel (used only
        by DeepSpeed's tensor-parallel inference). Building it compiles C++ for a minute or
        more on first use, so it is off; training does not use it.
    """

    DEEPSPEED_ENV_VAR = "PL_DEEPSPEED_CONFIG_PATH"

    def __init__(
        self,
        accelerator: Any = None,
        zero_optimization: bool = True,
        stage: int = 2,
        remote_device: str | None = None,
        offload_optimizer: bool = False,
        offload_parameters: bool = False,
        offload_params_device: str = "cpu",
        nvme_path: str = "/local_nvme",
        params_buffer_count: int = 5,
        params_buffer_size: int = 100_000_000,
        max_in_cpu: int = 1_000_000_000,
        offload_optimizer_device: str = "cpu",
        optimizer_buffer_count: int = 4,
        block_size: int = 1048576,
        queue_depth: int = 8,
        single_submit: bool = False,
        overlap_events: bool = True,
        thread_count: int = 1,
        pin_memory: bool = False,
        sub_group_size: int = 1_000_000_000_000,
        contiguous_gradients: bool = True,
        overlap_comm: bool = True,
        allgather_partitions: bool = True,
        reduce_scatter: bool = True,
        allgather_bucket_size: int = 200_000_000,
        reduce_bucket_size: int = 200_000_000,
        zero_allow_untested_optimizer: bool = True,
        logging_batch_size_per_gpu: int | None = None,
        config: str | Path | dict[str, Any] | None = None,
        logging_level: int = logging.WARN,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        loss_scale: float = 0,
        initial_scale_power: int = 16,
        loss_scale_window: int = 1000,
        hysteresis: int = 2,
        min_loss_scale: int = 1,
        partition_activations: bool = False,
        cpu_checkpointing: bool = False,
        contiguous_memory_optimization: bool = False,
        synchronize_checkpoint_boundary: bool = False,
        load_full_weights: bool = False,
        precision: Precision | None = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = dist.default_pg_timeout,
        exclude_frozen_parameters: bool = False,
        checkpoint_io: Any = None,
        shm_comm: bool = False,
        start_method: str = "popen",
    ) -> None:
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            cluster_environment=cluster_environment,
            checkpoint_io=checkpoint_io,
            precision=precision,
            process_group_backend=process_group_backend,
            timeout=timeout,
            start_method=start_method,
        )
        if stage not in (0, 1, 2, 3):
            raise ValueError(f"DeepSpeedStrategy(stage={stage!r}): ZeRO stages are 0, 1, 2 and 3.")
        self._settings = {
            "stage": stage,
            "offload_optimizer": offload_optimizer,
            "offload_parameters": offload_parameters,
            "remote_device": remote_device,
            "offload_params_device": offload_params_device,
            "offload_optimizer_device": offload_optimizer_device,
        }
        user_config, self._config_source = load_config(config)
        self._config_from_user = user_config is not None
        self.config: dict[str, Any] = user_config or default_config(
            zero_optimization=zero_optimization,
            zero_allow_untested_optimizer=zero_allow_untested_optimizer,
            logging_batch_size_per_gpu=logging_batch_size_per_gpu,
            partition_activations=partition_activations,
            cpu_checkpointing=cpu_checkpointing,
            contiguous_memory_optimization=contiguous_memory_optimization,
            synchronize_checkpoint_boundary=synchronize_checkpoint_boundary,
            offload_optimizer=offload_optimizer,
            offload_parameters=offload_parameters,
            nvme_path=nvme_path,
            offload_params_device=offload_params_device,
            params_buffer_count=params_buffer_count,
            params_buffer_size=params_buffer_size,
            max_in_cpu=max_in_cpu,
            offload_optimizer_device=offload_optimizer_device,
            optimizer_buffer_count=optimizer_buffer_count,
            pin_memory=pin_memory,
            block_size=block_size,
            queue_depth=queue_depth,
            single_submit=single_submit,
            overlap_events=overlap_events,
            thread_count=thread_count,
            stage=stage,
            contiguous_gradients=contiguous_gradients,
            overlap_comm=overlap_comm,
            allgather_partitions=allgather_partitions,
            reduce_scatter=reduce_scatter,
            allgather_bucket_size=allgather_bucket_size,
            reduce_bucket_size=reduce_bucket_size,
            sub_group_size=sub_group_size,
        )
        self._loss_scaling = {
            "loss_scale": loss_scale,
            "initial_scale_power": initial_scale_power,
            "loss_scale_window": loss_scale_window,
            "hysteresis": hysteresis,
            "min_loss_scale": min_loss_scale,
        }
        self._zero_defaults = {"allgather_bucket_size": allgather_bucket_size, "reduce_bucket_size": reduce_bucket_size}
        self._logging_level = logging_level
        self.remote_device = remote_device
        self.load_full_weights = load_full_weights
        self.exclude_frozen_parameters = exclude_frozen_parameters
        self._shm_comm = shm_comm
        self._micro_batch_size: int | None = None
        self._records: list[EngineRecord] = []

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_records"] = []  # engines do not pickle; spawned processes start before setup anyway
        return state

    # -- naming and selection -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The registered name these settings stand for (``"deepspeed_stage_3_offload"``), for messages."""
        return registered_name(self._settings, self._config_from_user)

    @property
    def zero_stage(self) -> int:
        """The ZeRO stage in effect (0 when ZeRO is off)."""
        return zero_stage(self.config)

    @property
    def zero_stage_3(self) -> bool:
        return self.zero_stage == 3

    @property
    def uses_nvme(self) -> bool:
        """Whether the config offloads parameters or optimizer state to NVMe."""
        return uses_nvme(self.config, self.remote_device)

    def connect(self, **kwargs: Any) -> None:
        super().connect(**kwargs)
        # The connector chose a fabric-core precision by name; DeepSpeed does precision itself.
        self._precision = deepspeed_precision(self._precision)

    def validate(self) -> None:
        assert self.accelerator is not None
        deepspeed = check_runnable(
            self.name, self.accelerator.name, self.precision, self.config, self._config_source, self.uses_nvme
        )
        deepspeed.utils.logging.logger.setLevel(self._logging_level)

    # -- launch -----------------------------------------------------------------------------------

    def setup_environment(self) -> None:
        super().setup_environment()  # the process group, as for DDP
        init_deepspeed_comm(self.name, self.process_group_backend, self._timeout, self.root_device.type, self._shm_comm)

    # -- setup ------------------------------------------------------------------------------------

    def process_dataloader(self, dataloader: Any) -> Any:
        batch_size = getattr(dataloader, "batch_size", None)
        if self._micro_batch_size is None and isinstance(batch_size, int) and batch_size > 0:
            self._micro_batch_size = batch_size
        return dataloader

    def engine_config(self) -> dict[str, Any]:
        """The config the next engine gets: the user's or the default one, with Fabric's values filled in."""
        return resolve_config(
            self.config,
            precision=self.precision.precision,
            micro_batch_size=self._micro_batch_size,
            loss_scaling=self._loss_scaling,
            zero_defaults=self._zero_defaults,
            source=self._config_source,
        )

    def setup_module_and_optimizers(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any = None
    ) -> tuple[Module, list[Optimizer], Any]:
        """One DeepSpeed engine for ``module`` and its optimizer (or none: a frozen or inference model).

        :return: the engine (Fabric's forward module), DeepSpeed's optimizer (as Lightning
            returns it: ``zero_grad`` must reach DeepSpeed, whose offloaded gradient buffers a
            plain ``zero_grad`` on the user's optimizer would drop; it shares the user's
            ``param_groups``, so schedulers made before setup work) and the scheduler, unchanged.
        """
        optimizer = one_optimizer(self._records, optimizers)
        engine = self._initialize_engine(module, optimizer)
        return engine, [] if optimizer is None else [engine.optimizer], scheduler

    def setup_module(self, module: Module) -> Module:
        engine: Module = self._initialize_engine(module, None)
        return engine

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        raise NotImplementedError(
            f"strategy={self.name!r} cannot set up an optimizer on its own (fabric.setup_optimizers): DeepSpeed needs "
            "the model and optimizer together to build its engine. Use fabric.setup(model, optimizer) instead of "
            "fabric.setup_module(model) followed by fabric.setup_optimizers(optimizer)."
        )

    def _initialize_engine(self, module: Module, optimizer: Optimizer | None) -> Any:
        clipping_from_user = self._config_from_user and self.config.get("gradient_clipping", "auto") != "auto"
        record = initialize_engine(
            self.name, self.engine_config(), module, optimizer, self.root_device, clipping_from_user
        )
        self._records.append(record)
        return record.engine

    @property
    def engines(self) -> list[Any]:
        """The DeepSpeed engines set up so far, in order."""
        return [record.engine for record in self._records]

    @property
    def records(self) -> tuple[EngineRecord, ...]:
        """Each engine set up so far with the user's model and optimizer it was made from, in order."""
        return tuple(self._records)

    @property
    def model(self) -> Any:
        """The engine set up last (Lightning's ``strategy.model``), or ``None``."""
        return self._records[-1].engine if self._records else None

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        """Stage 3: ``deepspeed.zero.Init``, so parameters are partitioned as the model is built."""
        if not self.zero_stage_3:
            return super().module_init_context(empty_init=empty_init)
        deepspeed = import_deepspeed(self.name)
        stack = ExitStack()
        if empty_init:
            stack.enter_context(EmptyInit())
        stack.enter_context(self.precision.module_init_context())
        stack.enter_context(
            deepspeed.zero.Init(remote_device=self.remote_device, config_dict_or_path=self.engine_config())
        )
        return stack

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        """``fabric.no_backward_sync(model)``: the backward passes inside are not a gradient-accumulation boundary.

        DeepSpeed's ``engine.set_gradient_accumulation_boundary(False)`` for the block: gradients
        accumulate (ZeRO stages 2 and 3 still reduce them into their partitions as they come)
        and the next backward pass outside the block completes the accumulation, so
        ``optimizer.step()`` after it steps once, as with DDP.
        """

        def control(module: Module, enabled: bool) -> AbstractContextManager:
            record = record_for_module(self._records, module, "fabric.no_backward_sync()")
            return not_a_boundary(record) if enabled else nullcontext()

        return control

    # -- training step ----------------------------------------------------------------------------

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        if len(self._records) > 1:
            record = record_for_loss(self._records, tensor, module)
        else:
            record = record_for_module(self._records, module, "fabric.backward()")
        check_boundary(record, self.zero_stage, self.name)
        boundary = not record.accumulating
        self.precision.backward(tensor, record.engine, *args, **kwargs)
        if boundary:
            record.boundary_passes += 1

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        record = record_for_optimizer(self._records, optimizer)
        check_step(kwargs, self.name)
        try:
            return self.precision.optimizer_step(record.engine)
        finally:
            record.boundary_passes = 0
            set_clipping(record, record.clipping)  # clip_gradients applies to one step

    def clip_gradients_norm(
        self,
        module: Module,
        optimizer: Optimizer,
        max_norm: float | int,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor:
        """Clip the coming step's gradients to ``max_norm`` through DeepSpeed's ``gradient_clipping``.

        DeepSpeed clips inside its step, after reducing (and, with ZeRO, partitioning) the
        gradients, by their global L2 norm. :return: that norm for the current gradients.
        """
        record = record_for_module(self._records, module, "fabric.clip_gradients()")
        check_clipping(record, optimizer, max_norm, norm_type, self.name, self._config_source)
        set_clipping(record, float(max_norm))
        return gradient_norm(record, self.root_device)

    def clip_gradients_value(self, module: Module, optimizer: Optimizer, clip_val: float | int) -> None:
        raise NotImplementedError(
            f"fabric.clip_gradients(clip_val={clip_val}) cannot run with strategy={self.name!r}: DeepSpeed clips "
            "gradients only by their total norm (its gradient_clipping setting), not value by value. Use "
            f"fabric.clip_gradients(model, optimizer, max_norm={clip_val}) instead."
        )

    # -- checkpoints ------------------------------------------------------------------------------

    def load_module_state_dict(self, module: Module, state_dict: dict[str, Any], strict: bool = True) -> None:
        for record in self._records:
            if module is record.module or module is record.engine:
                checkpoint.load_full_weights(self, record, state_dict, strict)
                return
        super().load_module_state_dict(module, state_dict, strict=strict)

    def get_optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        for record in self._records:
            if record.owns(optimizer):
                return record.engine.optimizer.state_dict()  # type: ignore[no-any-return]
        return super().get_optimizer_state(optimizer)

    def save_checkpoint(
        self, path: Any, state: dict[str, Any], filter: dict[str, Any] | None = None, storage_options: Any = None
    ) -> None:
        checkpoint.save(self, path, state, filter, storage_options)

    def load_checkpoint(
        self,
        path: Any,
        state: dict[str, Any] | Module | Optimizer | None = None,
        strict: bool = True,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return checkpoint.load(self, path, state, strict=strict, weights_only=weights_only is not False)

    # -- the end ----------------------------------------------------------------------------------

    def teardown(self) -> None:
        destroy_engines(self._records)
        super().teardown()

    def __repr__(self) -> str:
        return (
            f"DeepSpeedStrategy(name={self.name!r}, stage={self.zero_stage}, devices={self.num_processes}, "
            f"nodes={self.num_nodes})"
        )


__all__ = ["PRECISIONS", "DeepSpeedStrategy"]
