"""fabric-core's own components, registered through its own entry point like any add-on.

``pyproject.toml`` declares ``[project.entry-points.fabric_core] builtins =
"fabric_core._builtins"``. Factories are ``"module:Class"`` strings, imported only when
selected, which keeps discovery cheap.
"""

from __future__ import annotations

from fabric_core.commands import Commands
from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

_ACCELERATORS = "fabric_core.accelerators"
_PRECISION = "fabric_core.precision"


@hookimpl
def fabric_register_accelerators(registry: Registry) -> None:
    registry.add(
        "cpu",
        f"{_ACCELERATORS}.cpu:CPUAccelerator",
        description="the CPU; devices=N runs N processes",
        priority=0,
    )
    registry.add("cuda", f"{_ACCELERATORS}.cuda:CUDAAccelerator", description="NVIDIA GPUs through CUDA", priority=20)
    registry.add(
        "mps",
        f"{_ACCELERATORS}.mps:MPSAccelerator",
        description="Apple silicon GPUs through Metal",
        priority=10,
    )
    registry.add_alias("gpu", ["cuda", "mps"], description="the first available of cuda and mps")


_DDP = "fabric_core.strategies.ddp:DDPStrategy"


@hookimpl
def fabric_register_strategies(registry: Registry) -> None:
    registry.add(
        "single_device",
        "fabric_core.strategies.single_device:SingleDeviceStrategy",
        description="one process on one device",
    )
    launch = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}
    for prefix, start_method in launch.items():
        registry.add(
            prefix,
            _DDP,
            init_params={"start_method": start_method},
            description=f"DistributedDataParallel, processes started by {start_method}",
        )
        for unused in (True, False):
            registry.add(
                f"{prefix}_find_unused_parameters_{str(unused).lower()}",
                _DDP,
                init_params={"start_method": start_method, "find_unused_parameters": unused},
                description=f"{prefix} with find_unused_parameters={unused}",
            )
    registry.add("fsdp", "fabric_core.strategies.fsdp:FSDPStrategy", description="FSDP2 fully sharded data parallel")
    registry.add(
        "fsdp_cpu_offload",
        "fabric_core.strategies.fsdp:FSDPStrategy",
        init_params={"cpu_offload": True},
        description="FSDP2 with parameters, gradients and optimizer state offloaded to the CPU",
    )
    registry.add(
        "model_parallel",
        "fabric_core.strategies.model_parallel:ModelParallelStrategy",
        description="your parallelize_fn (tensor parallel, FSDP) on a 2-D device mesh",
    )
    registry.add(
        "dp",
        "fabric_core.strategies.dp:DataParallelStrategy",
        description="DataParallel over the GPUs of one process (ddp on other accelerators)",
        accelerators=["cuda"],
        fallback="ddp",
        single_process=True,
    )


@hookimpl
def fabric_register_precisions(registry: Registry) -> None:
    registry.add("32-true", f"{_PRECISION}.precision:Precision", description="float32 everywhere")
    registry.add("64-true", f"{_PRECISION}.dtype:DoublePrecision", description="float64 everywhere")
    for name, dtype in (("16-mixed", "float16"), ("bf16-mixed", "bfloat16")):
        registry.add(
            name,
            f"{_PRECISION}.amp:MixedPrecision",
            init_params={"precision": name},
            description=f"autocast to {dtype}, float32 weights",
        )
    for name, dtype in (("16-true", "float16"), ("bf16-true", "bfloat16")):
        registry.add(
            name,
            f"{_PRECISION}.dtype:HalfPrecision",
            init_params={"precision": name},
            description=f"{dtype} weights and activations",
        )


@hookimpl
def fabric_register_environments(registry: Registry) -> None:
    registry.add(
        "local",
        "fabric_core.environments.local:LocalEnvironment",
        description="processes started on this machine by Fabric",
        priority=0,
    )
    registry.add(
        "torchelastic",
        "fabric_core.environments.torchelastic:TorchElasticEnvironment",
        description="processes started by torchrun / fabric run",
        priority=90,
    )
    # Detection order as Lightning's: SLURM > torchrun > LSF > MPI > local; Kubeflow only when passed.
    registry.add(
        "slurm",
        "fabric_core.environments.slurm:SLURMEnvironment",
        # Detection installs no signal handler; SLURMEnvironment() passed by the user does.
        init_params={"auto_requeue": False},
        description="tasks started by SLURM's srun (not in interactive allocations)",
        priority=100,
    )
    registry.add(
        "lsf",
        "fabric_core.environments.lsf:LSFEnvironment",
        description="tasks started by LSF's jsrun",
        priority=80,
    )
    registry.add(
        "mpi",
        "fabric_core.environments.mpi:MPIEnvironment",
        description="processes started by mpirun (detected through mpi4py)",
        priority=70,
    )
    registry.add(
        "kubeflow",
        "fabric_core.environments.kubeflow:KubeflowEnvironment",
        description="a Kubeflow PyTorchJob; never detected, pass KubeflowEnvironment() in plugins",
    )


@hookimpl
def fabric_register_loggers(registry: Registry) -> None:
    registry.add(
        "csv",
        "fabric_core.loggers.csv_logs:CSVLogger",
        description="metrics to logs/<name>/version_N/metrics.csv",
    )


@hookimpl
def fabric_register_callbacks(registry: Registry) -> None:
    registry.add(
        "progress_bar",
        "fabric_core.callbacks.progress:ProgressBar",
        description="step, metrics, it/s and ETA on rank 0 (tqdm on a terminal, plain lines otherwise)",
    )
    registry.add(
        "loss_spike",
        "fabric_core.callbacks.loss_spike:LossSpikeDetector",
        description="warns when the loss jumps above 5 x its recent median or is not finite",
    )


@hookimpl
def fabric_register_commands(commands: Commands) -> None:
    commands.add_checkpoint_format(
        "sharded",
        detect="fabric_core.strategies.sharded_checkpoint:is_sharded_checkpoint",
        consolidate="fabric_core.cli:consolidate_sharded",
        description="a torch.distributed.checkpoint directory (fabric.save with fsdp or model_parallel)",
    )
