"""SLURMEnvironment: detection, ranks, address and port, settings validation."""

from __future__ import annotations

import signal

import pytest

from fabric_core._connector import select
from fabric_core.environments import SLURMEnvironment
from fabric_core.environments.slurm import DEFAULT_PORT, PORT_OFFSET, parse_tasks_per_node


def test_not_detected_without_slurm() -> None:
    assert not SLURMEnvironment.detect()


def test_detected_in_a_batch_job(slurm_env: dict[str, str]) -> None:
    assert SLURMEnvironment.detect()


def test_detected_from_ntasks_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert SLURMEnvironment.detect()


def test_other_slurm_variables_without_ntasks_are_not_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    # a login node or a job step started without tasks (Lightning's rule: SLURM_NTASKS decides)
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_NODELIST", "node1")
    assert not SLURMEnvironment.detect()


@pytest.mark.parametrize("job_name", ["bash", "interactive"])
def test_interactive_allocation_is_not_detected(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, job_name: str
) -> None:
    monkeypatch.setenv("SLURM_JOB_NAME", job_name)
    assert not SLURMEnvironment.detect()
    assert SLURMEnvironment.job_name() == job_name


@pytest.mark.parametrize("job_name", ["train", "bash-script", "my_interactive_run", ""])
def test_other_job_names_are_detected(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, job_name: str
) -> None:
    monkeypatch.setenv("SLURM_JOB_NAME", job_name)
    assert SLURMEnvironment.detect()


def test_ranks_and_world_size(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setenv("SLURM_NNODES", "2")
    env = SLURMEnvironment()
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 1)
    assert env.creates_processes_externally is True


def test_set_world_size_and_rank_are_ignored(slurm_env: dict[str, str]) -> None:
    env = SLURMEnvironment()
    env.set_world_size(99)
    env.set_global_rank(42)
    assert env.world_size() == 4
    assert env.global_rank() == 0


def test_node_rank_defaults_to_zero(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_NODEID")
    assert SLURMEnvironment().node_rank() == 0


@pytest.mark.parametrize(
    ("variable", "method"),
    [("SLURM_PROCID", "global_rank"), ("SLURM_LOCALID", "local_rank"), ("SLURM_NTASKS", "world_size")],
)
def test_missing_variable_says_which_and_how(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, variable: str, method: str
) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(RuntimeError, match=f"{variable}, which is not set.*srun python script.py"):
        getattr(SLURMEnvironment(), method)()


def test_non_integer_rank_is_reported(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "zero")
    with pytest.raises(RuntimeError, match="SLURM_PROCID='zero' is not an integer"):
        SLURMEnvironment().global_rank()


# -- main address ----------------------------------------------------------------------------


def test_main_address_is_the_first_node(slurm_env: dict[str, str]) -> None:
    assert SLURMEnvironment().main_address == "node001"


def test_main_address_from_job_nodelist(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_NODELIST")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[12-13]")
    assert SLURMEnvironment().main_address == "gpu12"


def test_master_addr_wins(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.5")
    assert SLURMEnvironment().main_address == "10.0.0.5"


def test_main_address_without_nodelist(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_NODELIST")
    assert SLURMEnvironment().main_address == "127.0.0.1"


def test_malformed_nodelist_names_the_variable(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NODELIST", "node[3-1]")
    with pytest.raises(RuntimeError, match=r"SLURM_NODELIST='node\[3-1\]'.*runs backwards"):
        _ = SLURMEnvironment().main_address


# -- main port -------------------------------------------------------------------------------


@pytest.mark.parametrize(("job_id", "port"), [("123456", 18456), ("42", 15042), ("9999", 24999), ("10000", 15000)])
def test_main_port_from_the_job_id(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, job_id: str, port: int
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", job_id)
    assert SLURMEnvironment().main_port == port == PORT_OFFSET + int(job_id[-4:])


def test_master_port_wins(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_PORT", "29501")
    assert SLURMEnvironment().main_port == 29501


def test_main_port_without_job_id(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID")
    assert SLURMEnvironment().main_port == DEFAULT_PORT


def test_every_task_computes_the_same_port(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    ports = set()
    for rank in range(4):
        monkeypatch.setenv("SLURM_PROCID", str(rank))
        monkeypatch.setenv("SLURM_LOCALID", str(rank))
        ports.add(SLURMEnvironment().main_port)
    assert ports == {18456}


# -- tasks per node ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4", [4]), ("2(x3)", [2, 2, 2]), ("2(x3),1", [2, 2, 2, 1]), ("1,2(x2)", [1, 2, 2]), (" 8 ( x 2 ) ", [8, 8])],
)
def test_parse_tasks_per_node(value: str, expected: list[int]) -> None:
    assert parse_tasks_per_node(value) == expected


@pytest.mark.parametrize("value", ["", "x", "2(3)", "2(x)", "-1", "2(x3"])
def test_parse_tasks_per_node_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="tasks per node"):
        parse_tasks_per_node(value)


def test_local_world_size_from_ntasks_per_node(slurm_env: dict[str, str]) -> None:
    assert SLURMEnvironment().local_world_size() == 4


@pytest.mark.parametrize(("node", "expected"), [("0", 2), ("2", 2), ("3", 1)])
def test_local_world_size_from_uneven_tasks_per_node(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, node: str, expected: int
) -> None:
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x3),1")
    monkeypatch.setenv("SLURM_NNODES", "4")
    monkeypatch.setenv("SLURM_NTASKS", "7")
    monkeypatch.setenv("SLURM_NODEID", node)
    assert SLURMEnvironment().local_world_size() == expected


def test_local_world_size_from_ntasks_and_nodes(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NNODES", "2")
    assert SLURMEnvironment().local_world_size() == 4


def test_devices_auto_means_tasks_per_node(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    selection = select(accelerator="cpu")
    assert isinstance(selection.environment, SLURMEnvironment)
    assert len(selection.devices) == 2
    assert type(selection.strategy).__name__ == "DDPStrategy"


# -- validate_settings -------------------------------------------------------------------------


def test_matching_settings_pass(slurm_env: dict[str, str]) -> None:
    SLURMEnvironment().validate_settings(num_devices=4, num_nodes=1)


def test_total_mismatch_names_both_and_suggests_ntasks_per_node(slurm_env: dict[str, str]) -> None:
    with pytest.raises(ValueError) as caught:
        SLURMEnvironment().validate_settings(num_devices=2, num_nodes=1)
    message = str(caught.value)
    assert "devices=2" in message
    assert "num_nodes=1" in message
    assert "SLURM_NTASKS=4" in message
    assert "--ntasks-per-node=2" in message


def test_per_node_mismatch(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    with pytest.raises(ValueError, match=r"devices=4.*--ntasks-per-node=2.*Set devices=2"):
        SLURMEnvironment().validate_settings(num_devices=4, num_nodes=1)


def test_node_count_mismatch(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_NNODES", "1")
    with pytest.raises(ValueError, match=r"num_nodes=2.*--nodes=1.*Set num_nodes=1"):
        SLURMEnvironment().validate_settings(num_devices=2, num_nodes=2)


def test_interactive_allocation_skips_validation(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")
    SLURMEnvironment().validate_settings(num_devices=1, num_nodes=1)


def test_mismatch_through_fabric_arguments(slurm_env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"Fabric\(devices=1, num_nodes=1\).*SLURM_NTASKS=4.*--ntasks-per-node"):
        select(accelerator="cpu", devices=1, num_nodes=1)


# -- constructor -----------------------------------------------------------------------------


def test_repr() -> None:
    # auto_requeue defaults to True, as in Lightning (it used to default to False here).
    assert repr(SLURMEnvironment()) == "SLURMEnvironment(auto_requeue=True, requeue_signal=SIGUSR1)"
    assert repr(SLURMEnvironment(auto_requeue=False)) == "SLURMEnvironment(auto_requeue=False)"


def test_requeue_signal_without_auto_requeue_is_kept_but_not_handled() -> None:
    # Lightning accepts the combination (this used to raise): the signal is stored, nothing is installed.
    before = signal.getsignal(signal.SIGUSR2)
    env = SLURMEnvironment(auto_requeue=False, requeue_signal=signal.SIGUSR2)
    assert env.requeue_signal is signal.SIGUSR2
    assert not env.requeue_handler_installed
    assert signal.getsignal(signal.SIGUSR2) is before


def test_procid_not_below_ntasks_is_refused_at_construction(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_PROCID", "4")
    with pytest.raises(ValueError, match=r"SLURM_PROCID=4 is not below SLURM_NTASKS=4: ranks run from 0 to 3"):
        SLURMEnvironment()


def test_malformed_master_port_is_refused_at_construction(
    slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTER_PORT", "x")
    with pytest.raises(RuntimeError, match=r"MASTER_PORT='x' is not an integer"):
        SLURMEnvironment()


@pytest.mark.parametrize("command", [[], [""], ["scontrol", 3]])
def test_bad_requeue_command_is_refused(command: list[object]) -> None:
    with pytest.raises(ValueError, match="requeue_command"):
        SLURMEnvironment(requeue_command=command)  # type: ignore[arg-type]
