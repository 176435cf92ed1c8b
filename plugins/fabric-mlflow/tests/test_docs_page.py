"""The user guide page (docs/plugins/mlflow.md) runs as written, with the add-on installed.

fabric-core's own doc tests compile every block but run only core examples; the blocks marked
``<!-- run: fabric-mlflow -->`` need this add-on, so they run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric_core.testing import run_docs_examples

PAGE = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "mlflow.md"


def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_docs_examples(PAGE, "fabric-mlflow")
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
