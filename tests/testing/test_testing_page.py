"""docs/guide/testing.md: its example test files pass when pytest runs them, as a plugin author's suite would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "testing.md"
_BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)
#: run by the kit's own tests already (tests/test_testing_kit.py), minutes on a small machine
_NOT_RERUN = ("tests/test_multi_process.py",)


def _files() -> dict[str, str]:
    return {match["path"]: match["code"] for match in _BLOCK.finditer(PAGE.read_text(encoding="utf-8"))}


def test_the_page_shows_a_test_file_for_each_suite() -> None:
    text = "\n".join(_files().values())
    for suite in ("StrategyConformance", "PrecisionConformance", "EnvironmentConformance"):
        assert f"({suite})" in text, f"docs/guide/testing.md has no example subclassing {suite}"
    for suite in ("CallbackConformance", "HookWrapperConformance", "conformance_run", "fabric_plugins"):
        assert suite in text, f"docs/guide/testing.md has no example using {suite}"


@pytest.mark.timeout(900)
def test_the_page_examples_pass(pytester: pytest.Pytester) -> None:
    files = _files()
    for path, code in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    ignored = [f"--ignore={path}" for path in _NOT_RERUN]
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *ignored, "tests")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 25, result.stdout.str()  # 26 today: every suite ran
