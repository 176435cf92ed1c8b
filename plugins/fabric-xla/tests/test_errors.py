"""Every refusal says what was asked, why it cannot be, and what to do.

The installation errors are checked in fresh processes (the kit's
:func:`fabric_core.testing.import_failure`) that hide this environment's torch_xla (as in an
environment where fabric-xla was installed without it) or put a torch_xla built for another
torch in front of it (its metadata, which is what fabric-xla reads before importing anything).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fabric_core import Fabric
from fabric_core.cli import main as cli_main
from fabric_core.testing import import_failure

from fabric_xla._imports import TESTED_TORCH, TESTED_TORCH_XLA, mismatch_message, missing_message
from fabric_xla.accelerator import XLAAccelerator


def test_missing_torch_xla_names_the_torch_version_and_what_to_install(tmp_path: Path) -> None:
    # As in an environment where fabric-xla was installed without torch_xla.
    failure = import_failure(tmp_path, 'Fabric(accelerator="tpu", devices=1)', missing=["torch_xla"])
    assert failure.type == "XLANotAvailableError"
    assert "accelerator='tpu' (XLA) runs on torch_xla, which is not installed" in failure.message
    assert f"your torch {torch.__version__}: pip install 'torch-xla==2.9.*'" in failure.message
    assert f"pip install 'torch=={TESTED_TORCH}' 'torch-xla=={TESTED_TORCH_XLA}'" in failure.message


def test_torch_xla_built_for_another_torch_names_both_versions(tmp_path: Path) -> None:
    # Its metadata in front of the real one: fabric-xla reads it before importing torch_xla.
    site = tmp_path / "site"
    info = site / "torch_xla-2.5.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch_xla\nVersion: 2.5.1\n")
    failure = import_failure(tmp_path, 'Fabric(accelerator="tpu", devices=1)', env={"PYTHONPATH": str(site)})
    assert (
        f"the installed torch_xla 2.5.1 is built for torch 2.5.x and the installed torch is {torch.__version__}"
    ) in failure.message
    assert "pip install 'torch==2.5.*' 'torch-xla==2.5.1'" in failure.message
    assert "pip install 'torch-xla==2.9.*'" in failure.message


def test_installation_messages() -> None:
    assert mismatch_message("x", "2.9.1+cu128", "2.9.0") is None
    message = mismatch_message("strategy='xla'", "2.13.0", "2.9.0")
    assert message is not None and message.startswith("strategy='xla' runs on torch_xla")
    assert "torch_xla 2.9.0 is built for torch 2.9.x and the installed torch is 2.13.0" in message
    assert "pip install 'torch==2.9.*' 'torch-xla==2.9.0'" in message
    assert "pip install 'torch-xla==2.13.*'" in message
    assert "pip install 'torch-xla==2.13.*'" in missing_message("x", "2.13.0")


def test_no_xla_device_configured_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PJRT_DEVICE")
    assert not XLAAccelerator.is_available()
    with pytest.raises(RuntimeError, match=r"needs an XLA device.*PJRT_DEVICE is not set.*set PJRT_DEVICE=CPU"):
        Fabric(accelerator="tpu", devices=1)


def test_device_counts_and_bad_devices() -> None:
    accelerator = XLAAccelerator()
    assert XLAAccelerator.device_type() == "CPU"
    assert accelerator.auto_device_count() == 1  # CPU_NUM_DEVICES is not set
    assert accelerator.parse_devices("auto") == [0]
    assert accelerator.get_parallel_devices([0]) == [torch.device("xla", 0)]
    with pytest.raises(ValueError, match=r"devices=2 .* this host has 1 XLA device\(s\) of type CPU .*CPU_NUM_DEVICES"):
        accelerator.parse_devices(2)
    with pytest.raises(ValueError, match=r"a list names one device \(\[index\]\)"):
        accelerator.parse_devices([0, 1])


def test_xla_strategies_refuse_other_accelerators() -> None:
    with pytest.raises(ValueError, match=r"strategy='xla' runs on XLA devices, but accelerator='cpu' was selected"):
        Fabric(accelerator="cpu", devices=1, strategy="xla")


def test_fabric_run_says_why_xla_devices_are_launched_by_the_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('should not run')\n")
    code = cli_main(["run", "--accelerator", "tpu", "--devices", "1", str(script)])
    error = capsys.readouterr().err
    assert code == 2, error
    assert "--accelerator tpu: fabric run starts every process with torchrun, but XLA devices are started" in error
    assert "torch_xla.launch" in error and "fabric.launch(train)" in error
    assert "should not run" not in capsys.readouterr().out
