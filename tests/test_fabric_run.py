"""``fabric run``: launching scripts and modules through torchrun (DESIGN.md section 6).

Every run is a real ``python -m fabric_core run ...`` process (or the ``fabric`` console
script) with a timeout, starting real workers; the machine has two cores, so no run starts
more than two workers. Each process carries a unique marker in its environment, so a test
can check that none is left behind. The option checks also run in-process, with the
launcher replaced, to show that nothing starts when an option is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fabric_core import _run, hookimpl
from fabric_core.cli import main
from fabric_core.testing import find_free_port
from tests.helpers.processes import processes_with_marker

ROOT = Path(__file__).resolve().parents[1]
FABRIC_SCRIPT = shutil.which("fabric")
TIMEOUT = 60
CPU_DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]

#: The training script: Fabric() from the environment (or TEST_FABRIC_KWARGS), launch, a few
#: steps, an all_reduce of the ranks, and one RESULT line of JSON per rank.
TRAIN = """\
import json
import os
import queue
import sys
import threading
import time

import torch

from fabric_core import Fabric

OPTION_VARIABLES = ["FABRIC_ACCELERATOR", "FABRIC_STRATEGY", "FABRIC_DEVICES", "FABRIC_NUM_NODES", "FABRIC_PRECISION"]
fabric = Fabric(**json.loads(os.environ.get("TEST_FABRIC_KWARGS", "{}")))
fabric.launch()
if os.environ.get("TEST_SLEEP"):
    os.write(1, f"READY {fabric.global_rank}\\n".encode())
    time.sleep(float(os.environ["TEST_SLEEP"]))
torch.manual_seed(fabric.global_rank)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = fabric.setup(model, optimizer)
fail_step = int(os.environ.get("TEST_FAIL_STEP", "-1"))
for step in range(8):
    if fabric.global_rank == 1 and step == fail_step:
        if os.environ.get("TEST_EXIT_CODE"):
            sys.exit(int(os.environ["TEST_EXIT_CODE"]))
        raise ValueError(f"boom at step {step}")
    loss = model(torch.randn(8, 4, device=fabric.device)).pow(2).mean()
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
with fabric.autocast():
    device_type = fabric.device.type
    autocast = str(torch.get_autocast_dtype(device_type)) if torch.is_autocast_enabled(device_type) else None
rank_sum = fabric.all_reduce(torch.tensor(float(fabric.global_rank)), reduce_op="sum")
result = {
    "rank": fabric.global_rank,
    "world_size": fabric.world_size,
    "strategy": type(fabric.strategy).__name__,
    "precision": type(fabric.strategy.precision).__name__,
    "precision_name": getattr(fabric.strategy.precision, "precision", None),
    "autocast": autocast,
    "rank_sum": rank_sum.item(),
    "argv": sys.argv[1:],
    "env": {name: os.environ[name] for name in OPTION_VARIABLES if name in os.environ},
}
os.write(1, ("RESULT " + json.dumps(result) + "\\n").encode())  # one write: the ranks share stdout
"""


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    marker: str

    def results(self) -> list[dict[str, Any]]:
        found = [json.loads(line[len("RESULT ") :]) for line in self.output.splitlines() if line.startswith("RESULT ")]
        return sorted(found, key=lambda result: int(result["rank"]))


def _environment(marker: str, pythonpath: Sequence[Path] = (), **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FABRIC_")}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK", "GROUP_RANK"):
        env.pop(variable, None)
    env.pop("OMP_NUM_THREADS", None)
    env["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # as in the rest of the core suite (conftest.py)
    env["FABRIC_TEST_MARKER"] = marker
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in [ROOT, *pythonpath])
    env.update(extra)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fabric_core", "run", *args]


def _fabric_run(
    args: list[str], cwd: Path, pythonpath: Sequence[Path] = (), timeout: float = TIMEOUT, **extra: str
) -> Run:
    marker = f"fabric-run-test-{uuid.uuid4().hex}"
    start = time.monotonic()
    result = subprocess.run(
        _command(*args),
        cwd=cwd,
        env=_environment(marker, pythonpath, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout + result.stderr, time.monotonic() - start, marker)


def _assert_nothing_left(marker: str) -> None:
    deadline = time.monotonic() + 5
    while processes_with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_marker(marker) == []


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop a ``fabric run`` that a failed test left running: SIGTERM first, so torchrun stops its workers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


# -- launching ----------------------------------------------------------------------------------------


def test_two_processes_with_ddp(tmp_path: Path, script: Path) -> None:
    run = _fabric_run(
        [*CPU_DDP, "--main-port", str(find_free_port()), "train.py", "--some-arg", "--devices", "7"],
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.output
    results = run.results()
    assert [result["rank"] for result in results] == [0, 1], run.output
    for result in results:
        assert result["world_size"] == 2
        assert result["strategy"] == "DDPStrategy"
        assert result["rank_sum"] == 1.0
        # What follows the script is the script's, even when it looks like fabric run's own option.
        assert result["argv"] == ["--some-arg", "--devices", "7"]
        assert result["env"] == {
            "FABRIC_ACCELERATOR": "cpu",
            "FABRIC_STRATEGY": "ddp",
            "FABRIC_DEVICES": "2",
            "FABRIC_NUM_NODES": "1",
        }
    _assert_nothing_left(run.marker)


#: A script in Lightning's CLI style: no fabric.launch(), torch.distributed used right after
#: Fabric(), then setup, a sharded dataloader and a collective; with "launch" as its argument it
#: runs the same through fabric.launch(train) instead.
NO_LAUNCH = """\
import json
import os
import sys

import torch
import torch.distributed as dist

from fabric_core import Fabric

def train(fabric):
    model = torch.nn.Linear(4, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    loader = fabric.setup_dataloaders(torch.utils.data.DataLoader(list(range(8)), batch_size=2))
    shard = [batch.tolist() for batch in loader]
    fabric.backward(model(torch.randn(2, 4)).sum())
    optimizer.step()
    total = fabric.all_reduce(torch.tensor(float(fabric.global_rank + 1)), reduce_op="sum").item()
    result = {"rank": fabric.global_rank, "shard": shard, "total": total, "group": group_size}
    os.write(1, ("RESULT " + json.dumps(result) + "\\n").encode())

fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
group_size = dist.get_world_size() if dist.is_initialized() else None  # set up by Fabric() itself
if sys.argv[1:] == ["launch"]:
    fabric.launch(train)
else:
    train(fabric)
"""


@pytest.mark.parametrize("style", ["no-launch", "launch"])
def test_a_script_without_launch_runs_and_launch_is_a_no_op(tmp_path: Path, style: str) -> None:
    (tmp_path / "cli_style.py").write_text(NO_LAUNCH)
    args = [*CPU_DDP, "--main-port", str(find_free_port()), "cli_style.py"]
    run = _fabric_run([*args, "launch"] if style == "launch" else args, cwd=tmp_path)
    assert run.returncode == 0, run.output
    results = run.results()
    assert [result["rank"] for result in results] == [0, 1], run.output
    assert [result["shard"] for result in results] == [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]
    assert all(result["total"] == 3.0 and result["group"] == 2 for result in results)
    _assert_nothing_left(run.marker)


def _start_sleeping_run(tmp_path: Path, script: Path, marker: str) -> subprocess.Popen[str]:
    """A ``fabric run`` of two workers that sleep after printing READY (stdout and stderr on one pipe)."""
    return subprocess.Popen(
        _command("--accelerator", "cpu", "--devices", "2", "--main-port", str(find_free_port()), str(script)),
        cwd=tmp_path,
        env=_environment(marker, TEST_SLEEP="120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_workers_stop_when_fabric_run_is_killed(tmp_path: Path, script: Path) -> None:
    marker = f"fabric-run-test-{uuid.uuid4().hex}"
    process = _start_sleeping_run(tmp_path, script, marker)
    try:
        ready = 0
        for line in process.stdout or []:
            ready += line.startswith("READY ")
            if ready == 2:
                break
        assert len(processes_with_marker(marker)) >= 3  # fabric run and its two workers
        process.kill()  # SIGKILL: torchrun's handlers never run
        process.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 20  # "within seconds": a bound on waiting, not a timing assertion
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with_marker(marker) == [], "workers were left running after fabric run was killed"
    finally:
        _stop(process)
        for pid in processes_with_marker(marker):
            os.kill(pid, signal.SIGKILL)


def test_module_with_dash_m(tmp_path: Path) -> None:
    package = tmp_path / "site" / "mytraining"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "job.py").write_text(TRAIN)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    port = str(find_free_port())
    run = _fabric_run(
        [*CPU_DDP, "--main-port", port, "-m", "mytraining.job", "--lr", "0.1"],
        cwd=workdir,
        pythonpath=[tmp_path / "site"],
    )
    assert run.returncode == 0, run.output
    results = run.results()
    assert [(r["rank"], r["world_size"], r["strategy"]) for r in results] == [
        (0, 2, "DDPStrategy"),
        (1, 2, "DDPStrategy"),
    ]
    assert all(result["argv"] == ["--lr", "0.1"] for result in results)


def test_precision_is_passed_through(tmp_path: Path, script: Path) -> None:
    run = _fabric_run(["--precision", "bf16-mixed", "--main-port", str(find_free_port()), str(script)], cwd=tmp_path)
    assert run.returncode == 0, run.output
    (result,) = run.results()
    assert result["precision"] == "MixedPrecision"
    assert result["precision_name"] == "bf16-mixed"
    assert result["autocast"] == "torch.bfloat16"
    assert result["strategy"] == "SingleDeviceStrategy"
    # Only the options given (and devices, num_nodes) are set; accelerator and strategy stay the script's.
    assert result["env"] == {
        "FABRIC_PRECISION": "bf16-mixed",
        "FABRIC_DEVICES": "1",
        "FABRIC_NUM_NODES": "1",
    }


def test_conflict_between_code_and_command_line(tmp_path: Path, script: Path) -> None:
    run = _fabric_run(
        ["--accelerator", "cpu", "--strategy", "ddp", "--main-port", str(find_free_port()), str(script)],
        cwd=tmp_path,
        TEST_FABRIC_KWARGS=json.dumps({"strategy": "ddp_spawn"}),
    )
    assert run.returncode != 0, run.output
    assert "Fabric(strategy='ddp_spawn'), which conflicts with --strategy=ddp" in run.output
    assert run.results() == []
    _assert_nothing_left(run.marker)


NODE_OPTIONS = ["--accelerator", "cpu", "--devices", "1", "--num-nodes", "2", "--main-address", "127.0.0.1"]


def test_two_nodes_on_one_machine(tmp_path: Path, script: Path) -> None:
    port = str(find_free_port())
    marker = f"fabric-run-test-{uuid.uuid4().hex}"
    nodes = [
        subprocess.Popen(
            _command(*NODE_OPTIONS, "--node-rank", str(rank), "--main-port", port, str(script)),
            cwd=tmp_path,
            env=_environment(marker),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            _stop(node)
    for node_rank, (node, output) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 0, output
        (result,) = Run(0, output, 0.0, marker).results()
        assert result["rank"] == node_rank  # one process per node: its global rank is the node rank
        assert result["world_size"] == 2
        assert result["rank_sum"] == 1.0
        assert result["env"]["FABRIC_NUM_NODES"] == "2"
    _assert_nothing_left(marker)


# -- failures ----------------------------------------------------------------------------------------


def test_a_failing_rank_stops_the_run(tmp_path: Path, script: Path) -> None:
    run = _fabric_run(
        ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", f"--main-port={find_free_port()}", str(script)],
        cwd=tmp_path,
        TEST_FAIL_STEP="5",
    )
    assert run.returncode == 1, run.output  # the failing worker's exit status (an uncaught exception)
    assert run.seconds < 30
    assert "ValueError: boom at step 5" in run.output
    # The summary at the end names the rank and repeats its error.
    summary = run.output[run.output.rindex("fabric run: rank ") :]
    assert summary.startswith("fabric run: rank 1 (local rank 1, pid "), run.output
    assert "failed first: it exited with code 1." in summary
    assert "ValueError: boom at step 5" in summary
    assert run.results() == []
    _assert_nothing_left(run.marker)


def test_exit_status_is_the_failing_workers(tmp_path: Path, script: Path) -> None:
    run = _fabric_run(
        ["--accelerator", "cpu", "--devices", "2", "--main-port", str(find_free_port()), str(script)],
        cwd=tmp_path,
        TEST_FAIL_STEP="2",
        TEST_EXIT_CODE="7",
    )
    assert run.returncode == 7, run.output
    summary = run.output[run.output.rindex("fabric run: rank ") :]
    assert summary.startswith("fabric run: rank 1 (local rank 1, pid "), run.output
    assert "failed first: it exited with code 7." in summary
    _assert_nothing_left(run.marker)


def test_sigterm_stops_every_process(tmp_path: Path, script: Path) -> None:
    marker = f"fabric-run-test-{uuid.uuid4().hex}"
    process = _start_sleeping_run(tmp_path, script, marker)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while sum(line.startswith("READY ") for line in seen) < 2:
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=TIMEOUT)  # it must stop by itself; a hang fails here
    finally:
        _stop(process)
    reader.join(timeout=10)
    output = "".join(seen) + "".join(lines.queue)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "fabric run: got SIGTERM" in output
    _assert_nothing_left(marker)


# -- checking the options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "ddpp", "train.py"], "Unknown strategy='ddpp'. Did you mean 'ddp'"),
        (["missing.py"], "script 'missing.py' does not exist"),
        (["--num-nodes", "2", "--node-rank", "2", "train.py"], "--node-rank=2 is not valid with --num-nodes=2"),
    ],
)
def test_bad_options_start_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    # The script would leave a file behind if it ran.
    (tmp_path / "train.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    run = _fabric_run(args, cwd=tmp_path)
    assert run.returncode == 2, run.output
    last = run.output.strip().splitlines()[-1]
    assert last.startswith("fabric run: error: ") and message in last, run.output
    assert "torch.distributed" not in run.output
    assert not (tmp_path / "ran").exists()


def _no_launch(plan: _run.Plan) -> int:
    raise AssertionError(f"torchrun was started with {plan}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "ddpp", "train.py"], "Unknown strategy='ddpp'. Did you mean 'ddp'"),
        (["--accelerator", "cpux", "train.py"], "Unknown accelerator='cpux'. Did you mean 'cpu'?"),
        (["--precision", "bf17-mixed", "train.py"], "Unknown precision='bf17-mixed'."),
        (["missing.py"], "script 'missing.py' does not exist"),
        (["."], "script '.' is not a file"),
        ([], "a script to run is required"),
        (["-m"], "-m needs a module name"),
        (["-m", "no_such_module_xyz"], "-m no_such_module_xyz: no module named 'no_such_module_xyz'"),
        (["-m", "fabric_core.no_such_module"], "no module named 'fabric_core.no_such_module'"),
        (["-m", "fabric_core.cli.sub"], "'fabric_core.cli' is a module, not a package"),
        (["-m", "not-a-name"], "not a module name"),
        (["--node-rank", "1", "train.py"], "--node-rank=1 is not valid with --num-nodes=1"),
        (["--node-rank", "-1", "--num-nodes", "2", "train.py"], "--node-rank=-1 is not valid with --num-nodes=2"),
        (["--num-nodes", "0", "train.py"], "--num-nodes=0: expected 1 or more"),
        (["--main-port", "70000", "train.py"], "--main-port=70000: expected a port from 1 to 65535"),
        (["--devices", "0", "train.py"], "at least one device is needed"),
        (["--devices", "two", "train.py"], "expected a number, -1 or 'auto'"),
        (["--accelerator", "cpu", "--devices", "0,1", "train.py"], "CPU devices are counted, not indexed"),
    ],
)
def test_option_checks_in_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_run, "launch", _no_launch)
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fabric run ")
    assert message in err.strip().splitlines()[-1], err


def test_unknown_option_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["run", "--bogus", "train.py"])
    assert raised.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


# -- what would be launched --------------------------------------------------------------------------------


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> _run.Plan:
    from fabric_core.cli import build_parser

    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    namespace = build_parser().parse_args(["run", *args])
    assert isinstance(namespace, argparse.Namespace)
    return _run.plan(namespace)


def test_plan_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plan = _plan(tmp_path, monkeypatch, "train.py", "--x", "1")
    assert plan.torchrun_args == [
        "--nproc_per_node=1",
        "--nnodes=1",
        "--node_rank=0",
        "--master_addr=127.0.0.1",
        "--master_port=29400",
        "train.py",
        "--x",
        "1",
    ]
    assert plan.environment == {
        "FABRIC_DEVICES": "1",
        "FABRIC_NUM_NODES": "1",
        "OMP_NUM_THREADS": str(os.cpu_count() or 1),
    }


def test_module_in_the_working_directory_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ``python -m`` in the workers looks in the working directory first, though the ``fabric``
    # console script's own sys.path does not hold it.
    (tmp_path / "local_job_module_xyz.py").write_text("")
    plan = _plan(tmp_path, monkeypatch, "-m", "local_job_module_xyz", "--flag")
    assert plan.torchrun_args[-3:] == ["--module", "local_job_module_xyz", "--flag"]


def test_plan_with_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    options = ["--accelerator", "cpu", "--strategy", "ddp", "--devices", "2", "--num_nodes", "4", "--node_rank", "3"]
    options += ["--main_address", "10.1.2.3", "--main_port", "1234", "--precision", "bf16"]
    plan = _plan(tmp_path, monkeypatch, *options, "-m", "fabric_core.cli", "a")
    assert plan.processes == 2
    assert plan.torchrun_args == [
        "--nproc_per_node=2",
        "--nnodes=4",
        "--node_rank=3",
        "--master_addr=10.1.2.3",
        "--master_port=1234",
        "--module",
        "fabric_core.cli",
        "a",
    ]
    assert plan.environment == {
        "FABRIC_ACCELERATOR": "cpu",
        "FABRIC_STRATEGY": "ddp",
        "FABRIC_DEVICES": "2",
        "FABRIC_NUM_NODES": "4",
        "FABRIC_PRECISION": "bf16",  # as given: the script's Fabric(precision="bf16") agrees with it
    }


@pytest.mark.parametrize(("devices", "processes"), [("auto", 1), ("-1", os.cpu_count() or 1), ("3", 3)])
def test_plan_counts_cpu_processes_like_fabric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devices: str, processes: int
) -> None:
    plan = _plan(tmp_path, monkeypatch, "--accelerator", "cpu", "--devices", devices, "--strategy", "auto", "train.py")
    assert plan.processes == processes
    assert plan.environment["FABRIC_DEVICES"] == devices
    assert "FABRIC_STRATEGY" not in plan.environment  # "auto" leaves the choice to the script


# -- the command itself --------------------------------------------------------------------------------------


def test_help_lists_the_options() -> None:
    command = [FABRIC_SCRIPT, "run", "--help"] if FABRIC_SCRIPT else _command("--help")
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr
    for option in (
        "--accelerator",
        "--strategy",
        "--devices",
        "--num-nodes",
        "--num_nodes",
        "--node-rank",
        "--main-address",
        "--main-port",
        "--precision",
        "-m, --module",
        "(default: 29400)",
        "(default: 127.0.0.1)",
    ):
        assert option in result.stdout, option
    assert result.stdout.startswith("usage: fabric run ")


def test_python_dash_m_fabric_core() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fabric_core", "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "plugins" in result.stdout


def test_reference_page_matches_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fabric_core.cli import build_parser

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    section = page[page.index("\n## fabric run\n") :]
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    run_parser = commands.choices["run"]
    usage = run_parser.format_usage()
    assert f"```text\n{usage}```" in section
    for action in run_parser._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert f"`{option}" in section, option
    # The documented error is the real one (up to the list of names).
    (tmp_path / "train.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_run, "launch", _no_launch)
    assert main(["run", "--strategy", "ddpp", "train.py"]) == 2
    shown = section.split("$ fabric run --strategy ddpp train.py\n", 1)[1].split("```", 1)[0]
    assert capsys.readouterr().err.startswith(shown.removesuffix("...\n"))


def _single_process_plugin(name: str) -> ModuleType:
    module = ModuleType(f"fake_single_process_{name}")
    module.__dict__["hookimpl"] = hookimpl

    @hookimpl
    def fabric_register_strategies(registry: Any) -> None:
        registry.add(name, "fabric_core.strategies.ddp:DDPStrategy", single_process=True)
        registry.add(
            f"{name}_cuda",
            "fabric_core.strategies.ddp:DDPStrategy",
            single_process=True,
            accelerators=["cuda"],
            fallback="ddp",
        )

    module.__dict__["fabric_register_strategies"] = fabric_register_strategies
    return module


def test_plan_starts_one_process_for_a_single_process_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fabric_plugins: Any
) -> None:
    # Registry data, usable by add-ons (the core's "dp" is one): one process drives every device.
    fabric_plugins.register(_single_process_plugin("one_proc"))
    plan = _plan(tmp_path, monkeypatch, "--accelerator", "cpu", "--devices", "3", "--strategy", "one_proc", "train.py")
    assert plan.processes == 1
    assert plan.torchrun_args[0] == "--nproc_per_node=1"
    # ...unless it falls back to another strategy on this accelerator (dp runs ddp on a CPU, one process per device).
    plan = _plan(
        tmp_path, monkeypatch, "--accelerator", "cpu", "--devices", "3", "--strategy", "one_proc_cuda", "train.py"
    )
    assert plan.processes == 3
    plan = _plan(tmp_path, monkeypatch, "--accelerator", "cpu", "--devices", "3", "--strategy", "dp", "train.py")
    assert plan.processes == 3
