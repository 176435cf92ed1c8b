"""The user guide page (docs/plugins/wandb.md) runs as written, with the add-on installed.

fabric-core's own doc tests compile every block but run only core examples; the blocks marked
``<!-- run: fabric-wandb -->`` need this add-on, so they run here (offline, W&B's folders in
temporary ones, as every test here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.testing import run_docs_examples

PAGE = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "wandb.md"


def test_page_examples_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_file: Callable[[str | Path], Any],
    run_folders: Callable[[str | Path], list[Path]],
) -> None:
    monkeypatch.chdir(tmp_path)
    run_docs_examples(PAGE, "fabric-wandb")
    (folder,) = run_folders(tmp_path / "runs")
    run = run_file(folder)
    assert run.exit_code() == 0
    assert [step for step, _ in run.metric("train/loss")] == list(range(20))
    assert [entry.path for artifact in run.artifacts() for entry in artifact.manifest.contents] == ["model.ckpt"]
