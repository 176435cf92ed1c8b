"""``strategy="deepspeed"`` and its ``deepspeed_stage_*`` siblings: ZeRO through DeepSpeed's engine.

:class:`DeepSpeedStrategy` is a :class:`~fabric_core.strategies.ddp.DDPStrategy`: the same
launcher, process group (gloo on CPU, NCCL on CUDA), collectives and teardown. What it adds,
in the order a run meets it:

1. **Selection** (``connect``/``validate``): the precision chosen by name becomes a
   :class:`~fabric_deepspeed.precision.DeepSpeedPrecision`; impossible combinations
   (float16 on CPU, an accelerator DeepSpeed has no backend for, a config that contradicts
   ``precision=``) are refused naming both sides; deepspeed is imported for the right
   device, or the error says ``pip install deepspeed``.
2. **Launch** (``setup_environment``): DeepSpeed's communication layer is put on top of the
   process group the DDP strategy created.
3. **Setup**: each ``fabric.setup(model, optimizer)`` makes one ``deepspeed.initialize``
   engine, which becomes the module Fabric runs forward through. Several engines (a GAN's
   generator and discriminator) live side by side: ``fabric.backward(loss, model=...)``
   picks the engine, and each optimizer steps its own engine.
4. **Training step**: ``backward`` and ``optimizer.step()`` go to the engine;
   ``fabric.clip_gradients(max_norm=...)`` sets DeepSpeed's ``gradient_clipping`` for the
   coming step; ``fabric.no_backward_sync`` marks backward passes as not an accumulation
   boundary. The per-engine pieces live in :mod:`fabric_deepspeed.engines`.
5. **Checkpoints**: see :mod:`fabric_deepspeed.checkpoint`.

The user's scheduler is not handed to DeepSpeed: it is returned unchanged and stepped by the
user, as with every other strategy (Lightning gives it to DeepSpeed, which then steps it on
every ``optimizer.step()`` as well).
"""

from __future__ import annotations

import argparse
import logging
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from fabric_core.precision.amp import MixedPrecision
from fabric_core.precision.dtype import HalfPrecision
from fabric_core.precision.precision import Precision
from fabric_core.strategies._empty_init import EmptyInit
from fabric_core.strategies.ddp import DDPStrategy
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_deepspeed import STRATEGIES
from fabric_deepspeed._imports import DEEPSPEED_ACCELERATORS, import_deepspeed, use_accelerator
from fabric_deepspeed.config import check_precision, default_config, load_config, resolve_config, zero_stage
from fabric_deepspeed.engines import EngineRecord, gradient_norm, not_a_boundary, records_reached, set_clipping
from fabric_deepspeed.precision import DeepSpeedPrecision

#: Precision classes of fabric-core whose names DeepSpeed implements itself.
_TRANSLATABLE = (Precision, MixedPrecision, HalfPrecision)


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
        if self._config_from_user:
            return "deepspeed"
        defaults: dict[str, Any] = {
            "stage": 2,
            "offload_optimizer": False,
            "offload_parameters": False,
            "remote_device": None,
            "offload_params_device": "cpu",
            "offload_optimizer_device": "cpu",
        }
        # Most specific first, so that stage 2 with nothing else is "deepspeed_stage_2".
        registered: list[str] = list(STRATEGIES)[::-1]
        for candidate in registered:
            wanted = {**defaults, **STRATEGIES[candidate][0]}
            if all(self._settings[key] == value for key, value in wanted.items()):
                return candidate
        return f"DeepSpeedStrategy(stage={self._settings['stage']})"

    @property
    def zero_stage(self) -> int:
        """The ZeRO stage in effect (0 when ZeRO is off)."""
        return zero_stage(self.config)

    @property
    def zero_stage_3(self) -> bool:
        return self.zero_stage == 3

    def connect(self, **kwargs: Any) -> None:
        super().connect(**kwargs)
        precision = self._precision
        # The connector chose a fabric-core precision by name; DeepSpeed does precision itself.
        if type(precision) in _TRANSLATABLE and precision is not None and precision.precision in PRECISIONS:
            self._precision = DeepSpeedPrecision(precision.precision)

    def validate(self) -> None:
        assert self.accelerator is not None
        accelerator = self.accelerator.name
        if accelerator not in DEEPSPEED_ACCELERATORS:
            raise ValueError(
                f"strategy={self.name!r} cannot run on accelerator={accelerator!r}: fabric-deepspeed runs DeepSpeed on "
                f"{' and '.join(map(repr, DEEPSPEED_ACCELERATORS))} only. Use accelerator='cuda' or 'cpu', or "
                "another strategy."
            )
        precision = self.precision
        if not isinstance(precision, DeepSpeedPrecision):
            raise ValueError(
                f"precision={precision.precision!r} ({type(precision).__name__}) cannot run with "
                f"strategy={self.name!r}: DeepSpeed does precision itself, through its fp16 and bf16 modes, and "
                f"supports {', '.join(map(repr, PRECISIONS))}. Choose one of those."
            )
        if accelerator == "cpu" and precision.deepspeed_section == "fp16":
            raise ValueError(
                f"precision={precision.precision!r} cannot run with strategy={self.name!r} on accelerator='cpu': "
                "DeepSpeed refuses float16 on the CPU (its fp16 mode and loss scaler need a GPU). On the CPU use "
                "precision='bf16-mixed' (or 'bf16-true', '32-true'); for float16 use accelerator='cuda'."
            )
        check_precision(self.config, precision.precision, self._config_source)
        deepspeed = use_accelerator(accelerator, self.name)
        deepspeed.utils.logging.logger.setLevel(self._logging_level)
        if self.uses_nvme:
            from deepspeed import ops

            if not ops.__compatible_ops__.get("async_io", False):
                raise RuntimeError(
                    f"strategy={self.name!r} offloads to NVMe, which needs DeepSpeed's async_io extension, and it "
                    "cannot be built on this machine (it needs the libaio library: apt-get install libaio-dev, then "
                    "pip install --force-reinstall deepspeed). Offload to the CPU instead: "
                    "strategy='deepspeed_stage_3_offload'."
                )

    @property
    def uses_nvme(self) -> bool:
        """Whether the config offloads parameters or optimizer state to NVMe."""
        zero = self.config.get("zero_optimization")
        devices = [self.remote_device]
        if isinstance(zero, dict):
            devices += [
                part.get("device")
                for part in (zero.get("offload_param"), zero.get("offload_optimizer"))
                if isinstance(part, dict)
            ]
        return "nvme" in devices

    # -- launch -----------------------------------------------------------------------------------

    def setup_environment(self) -> None:
        super().setup_environment()  # the process group, as for DDP
        deepspeed = import_deepspeed(self.name)
        if self.root_device.type == "cpu" and not self._shm_comm:
            # DeepSpeed's communication layer would JIT-compile a shared-memory kernel here
            # that only its tensor-parallel inference uses; without it that falls back to
            # torch.distributed. See the shm_comm argument.
            from deepspeed import ops

            ops.__compatible_ops__["deepspeed_shm_comm"] = False
        timeout = self._timeout if self._timeout is not None else dist.default_pg_timeout
        deepspeed.init_distributed(
            dist_backend=self.process_group_backend, auto_mpi_discovery=False, timeout=timeout, verbose=False
        )

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
        if len(optimizers) > 1:
            raise ValueError(
                f"fabric.setup(model, {', '.join(type(o).__name__ for o in optimizers)}): a DeepSpeed engine drives "
                f"one optimizer, but {len(optimizers)} were given. Give each model its own optimizer, in its own "
                "fabric.setup(model, optimizer) call."
            )
        optimizer = optimizers[0] if optimizers else None
        for record in self._records:
            if optimizer is not None and record.owns(optimizer):
                raise ValueError("This optimizer already belongs to a DeepSpeed model set up before.")
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
        deepspeed = import_deepspeed(self.name)
        config = self.engine_config()
        args = argparse.Namespace(device_rank=self.root_device.index) if self.root_device.type == "cuda" else None
        engine, _, _, _ = deepspeed.initialize(
            args=args,
            config=config,
            model=module,
            model_parameters=[p for p in module.parameters() if p.requires_grad],
            optimizer=optimizer,
            dist_init_required=False,
        )
        clipping = float(config.get("gradient_clipping", 0.0))
        from_user = self._config_from_user and self.config.get("gradient_clipping", "auto") != "auto"
        self._records.append(EngineRecord(engine, module, optimizer, clipping, from_user))
        return engine

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

    def _record_for_module(self, module: Module | None, what: str) -> EngineRecord:
        for record in self._records:
            if module is record.engine or module is record.module:
                return record
        if module is None:
            if len(self._records) == 1:
                return self._records[0]
            if not self._records:
                raise RuntimeError(f"{what}: no model was set up. Call fabric.setup(model, optimizer) first.")
            raise ValueError(
                f"{what}: {len(self._records)} DeepSpeed models are set up, and each has its own engine. Say which "
                "one this is for: fabric.backward(loss, model=generator)."
            )
        raise ValueError(
            f"{what}: {type(module).__name__} was not set up by this Fabric's DeepSpeed strategy. Pass the model "
            "that fabric.setup() returned."
        )

    def _record_for_optimizer(self, optimizer: Optimizer) -> EngineRecord:
        for record in self._records:
            if record.owns(optimizer):
                return record
        raise ValueError(
            f"{type(optimizer).__name__} was not set up with a model by this Fabric's DeepSpeed strategy. Set it up "
            "together with its model: fabric.setup(model, optimizer)."
        )

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
            record = self._record_for_module(module, "fabric.no_backward_sync()")
            return not_a_boundary(record) if enabled else nullcontext()

        return control

    # -- training step ----------------------------------------------------------------------------

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        if len(self._records) > 1:
            record = self._record_for_loss(tensor, module)
        else:
            record = self._record_for_module(module, "fabric.backward()")
        boundary = not record.accumulating
        if boundary and record.boundary_passes and self.zero_stage in (1, 2):
            raise RuntimeError(
                f"fabric.backward() was called again before optimizer.step() with strategy={self.name!r}. ZeRO stages "
                "1 and 2 reduce the gradients at the end of each backward pass, and a second reduction before the "
                "step would be wrong. To accumulate gradients, run all but the last backward pass of a step inside "
                "`with fabric.no_backward_sync(model):`."
            )
        self.precision.backward(tensor, record.engine, *args, **kwargs)
        if boundary:
            record.boundary_passes += 1

    def _record_for_loss(self, loss: Tensor, module: Module | None) -> EngineRecord:
        """With several engines: the one whose parameters ``loss`` reaches, checked against ``model=``.

        A loss must reach one engine's parameters only: DeepSpeed's hooks on another
        engine's parameters would take the stray gradients into that engine's buffers,
        outside its own backward, and its next step would use them (or fail). Walking the
        graph before the backward pass turns that into a clear error, and finds the engine
        when ``model=`` is not given.
        """
        given = None if module is None else self._record_for_module(module, "fabric.backward()")
        reached = records_reached(self._records, loss)
        if given is not None:
            others = [record for record in reached if record is not given]
            if others:
                names = ", ".join(type(record.module).__name__ for record in others)
                raise ValueError(
                    f"fabric.backward(loss, model={type(given.module).__name__}): the loss also depends on parameters "
                    f"of another DeepSpeed model ({names}), whose engine would take these gradients into its next "
                    "step. Freeze that model while computing this loss (model.requires_grad_(False), then back to "
                    "True), or detach its output, as in a GAN's generator step."
                )
            return given
        if len(reached) == 1:
            return reached[0]
        names = ", ".join(type(record.module).__name__ for record in reached) or "none of them"
        raise ValueError(
            f"fabric.backward(loss): {len(self._records)} DeepSpeed models are set up and this loss reaches the "
            f"parameters of {names}. A backward pass must belong to one model: pass it as "
            "fabric.backward(loss, model=...), and freeze the other models while computing this loss."
        )

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        record = self._record_for_optimizer(optimizer)
        if kwargs.get("closure") is not None:
            raise ValueError(
                f"optimizer.step(closure=...) cannot run with strategy={self.name!r}: DeepSpeed's engine.step() "
                "takes no closure. Compute the loss and call fabric.backward(loss) before optimizer.step()."
            )
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
        record = self._record_for_module(module, "fabric.clip_gradients()")
        if float(norm_type) != 2.0:
            raise ValueError(
                f"fabric.clip_gradients(norm_type={norm_type!r}) cannot run with strategy={self.name!r}: DeepSpeed "
                "clips by the L2 norm of all gradients only. Use norm_type=2."
            )
        if record.optimizer is None:
            raise ValueError(
                "fabric.clip_gradients(): this DeepSpeed model was set up without an optimizer, so nothing steps "
                "with its gradients. Set it up with fabric.setup(model, optimizer)."
            )
        if not record.owns(optimizer):
            raise ValueError(
                "fabric.clip_gradients(model, optimizer, ...): the optimizer is not the one set up with this model."
            )
        if record.clipping_from_user and float(max_norm) != record.clipping:
            raise ValueError(
                f"fabric.clip_gradients(max_norm={max_norm}) contradicts gradient_clipping={record.clipping} in the "
                f"DeepSpeed config ({self._config_source}). Remove gradient_clipping from the config (or set it to "
                '"auto") to clip from the training loop, or stop calling fabric.clip_gradients.'
            )
        if max_norm <= 0:
            raise ValueError(f"fabric.clip_gradients(max_norm={max_norm}): max_norm must be positive.")
        set_clipping(record, float(max_norm))
        return gradient_norm(record, self.root_device)

    def clip_gradients_value(self, module: Module, optimizer: Optimizer, clip_val: float | int) -> None:
        raise NotImplementedError(
            f"fabric.clip_gradients(clip_val={clip_val}) cannot run with strategy={self.name!r}: DeepSpeed clips "
            "gradients only by their total norm (its gradient_clipping setting), not value by value. Use "
            f"fabric.clip_gradients(model, optimizer, max_norm={clip_val}) instead."
        )

    def load_module_state_dict(self, module: Module, state_dict: dict[str, Any], strict: bool = True) -> None:
        for record in self._records:
            if module is record.module or module is record.engine:
                from fabric_deepspeed.checkpoint import load_full_weights

                load_full_weights(self, record, state_dict, strict)
                return
        super().load_module_state_dict(module, state_dict, strict=strict)

    def get_optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        for record in self._records:
            if record.owns(optimizer):
                return record.engine.optimizer.state_dict()  # type: ignore[no-any-return]
        return super().get_optimizer_state(optimizer)

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(
        self, path: Any, state: dict[str, Any], filter: dict[str, Any] | None = None, storage_options: Any = None
    ) -> None:
        from fabric_deepspeed.checkpoint import save

        if storage_options is not None:
            raise TypeError(
                f"DeepSpeedStrategy.save_checkpoint(storage_options={storage_options!r}): DeepSpeed writes local "
                "files and takes no storage options. Drop the argument."
            )
        save(self, path, state, filter)

    def load_checkpoint(
        self,
        path: Any,
        state: dict[str, Any] | Module | Optimizer | None = None,
        strict: bool = True,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        from fabric_deepspeed.checkpoint import load

        return load(self, path, state, strict=strict, weights_only=weights_only is not False)

    # -- the end ----------------------------------------------------------------------------------

    def teardown(self) -> None:
        for record in self._records:
            destroy = getattr(record.engine, "destroy", None)
            if callable(destroy):
                try:
                    destroy()
                except Exception:  # teardown goes on; the engine is gone either way
                    pass
        self._records.clear()
        super().teardown()

    def __repr__(self) -> str:
        return (
            f"DeepSpeedStrategy(name={self.name!r}, stage={self.zero_stage}, devices={self.num_processes}, "
            f"nodes={self.num_nodes})"
        )


#: The precision names DeepSpeed runs.
PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
