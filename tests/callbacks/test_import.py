"""The built-in callbacks import no progress-bar library until one is drawn."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
import torch  # torch.hub imports tqdm itself when it is installed; count only what comes after

def bars():
    return sorted(name for name in sys.modules if name.split(".")[0] in ("tqdm", "rich"))

before = set(bars())
import fabric_core
import fabric_core.callbacks
from fabric_core import Fabric
fabric = Fabric(accelerator="cpu", callbacks=["progress_bar", "loss_spike"])
fabric.call("on_train_start", fabric=fabric, total=2)
print(json.dumps(sorted(set(bars()) - before)))
"""


def test_callbacks_import_neither_tqdm_nor_rich() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
