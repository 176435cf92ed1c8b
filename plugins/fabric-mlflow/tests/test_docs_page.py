"""The user guide page (docs/plugins/mlflow.md) runs as written, with the add-on installed.

fabric-core's own doc tests compile every block but run only core examples; the blocks marked
``<!-- run: fabric-mlflow -->`` need this add-on, so they run here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fabric_core import Fabric

PAGE = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "mlflow.md"
MARKER = "<!-- run: fabric-mlflow -->"


def _blocks() -> list[tuple[int, str]]:
    """``(line, code)`` of each python block right after the marker."""
    text = PAGE.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(re.escape(MARKER) + r"\s*\n```python\n(.*?)\n```", text, flags=re.DOTALL):
        found.append((text[: match.start(1)].count("\n") + 1, match.group(1)))
    return found


@pytest.mark.skipif(not PAGE.is_file(), reason="docs/ is not here (add-on tested outside the repository)")
def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks()
    assert blocks, f"{PAGE} has no block marked {MARKER}"
    monkeypatch.chdir(tmp_path)
    for line, code in blocks:
        namespace: dict[str, object] = {"__name__": "__docs__"}
        try:
            exec(compile("\n" * (line - 1) + code, str(PAGE), "exec"), namespace)
        finally:
            for value in namespace.values():
                if isinstance(value, Fabric):
                    value._teardown()
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
