"""Add-ons and docs use only fabric-core's public names.

The API for plugin authors (``fabric_core.errors``, ``fabric_core.discovery``,
``fabric_core.registry``, ``fabric_core.commands``, ``fabric_core.hookspecs``,
``fabric_core.log``, ``fabric_core.testing``) is public and documented, so no add-on, add-on
test or docs page needs a ``fabric_core._private`` import. This fails when one does, naming
the file and line.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: a private module at any depth (``fabric_core._x``, ``fabric_core.strategies._x``) or a private name imported
PRIVATE = re.compile(r"\bfabric_core(?:\.\w+)*?\._\w+|from fabric_core(?:\.\w+)* import _\w+")
#: in Markdown, prose may name the idea ("a `fabric_core._private` module"); only code lines count
PRIVATE_IMPORT = re.compile(
    r"^\s*(from fabric_core(?:\.\w+)*?\._|import fabric_core(?:\.\w+)*?\._|from fabric_core(?:\.\w+)* import _)"
)
#: the entry point value of fabric-core itself, which `fabric plugins` prints (it is metadata, not an import)
ENTRY_POINT_VALUE = "builtins = fabric_core._builtins"
SKIP = {".nox", ".mypy_cache", ".ruff_cache", "build", "dist", "__pycache__", ".venv"}


def _files() -> list[Path]:
    found = []
    for folder in (ROOT / "plugins", ROOT / "docs"):
        for path in folder.rglob("*"):
            if path.suffix in {".py", ".md", ".toml"} and not SKIP & set(path.relative_to(ROOT).parts):
                found.append(path)
    return found


def test_addons_and_docs_use_no_private_name() -> None:
    offences = []
    for path in _files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            pattern = PRIVATE_IMPORT if path.suffix == ".md" else PRIVATE
            if pattern.search(line.replace(ENTRY_POINT_VALUE, "")):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offences, "private fabric_core names outside the core:\n" + "\n".join(offences)


@pytest.mark.parametrize(
    "module",
    [
        "fabric_core.errors",
        "fabric_core.discovery",
        "fabric_core.registry",
        "fabric_core.commands",
        "fabric_core.log",
    ],
)
def test_public_modules_declare_their_names(module: str) -> None:
    imported = importlib.import_module(module)
    names = getattr(imported, "__all__", None)
    assert names, f"{module} has no __all__"
    missing = [name for name in names if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ lists names it lacks: {missing}"
    assert all(not name.startswith("_") for name in names)
