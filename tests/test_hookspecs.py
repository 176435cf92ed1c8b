"""The hookspecs' docstrings have one shape, and docs/reference/hooks.md says what they say.

Every hookspec docstring ends with the five fields ``When:``, ``How often:``, ``Call:``,
``Returns:`` and ``Owner:``; the hook's section of the reference page lists the same five
as bullets with the same words (``x`` in the page, ````x```` in the docstring). Changing one
without the other fails here. tests/test_docs.py checks the page's signatures.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from fabric_core import hookspecs
from fabric_core._plugin_manager import SPEC_NAMES

HOOKS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "hooks.md"
FIELDS = ("When", "How often", "Call", "Returns", "Owner")


def _specs() -> dict[str, Any]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {name: value for name, value in vars(hookspecs).items() if hasattr(value, marker)}


SPECS = _specs()


def _words(text: str) -> str:
    return " ".join(text.replace("``", "`").split())


def docstring_fields(name: str) -> dict[str, str]:
    """The five fields at the end of the hookspec's docstring (continuation lines are indented)."""
    doc = inspect.getdoc(SPECS[name]) or ""
    fields: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        match = re.match(rf"^({'|'.join(FIELDS)}): (.*)$", line)
        if match:
            current = match.group(1)
            fields[current] = match.group(2)
        elif current is not None and line.startswith("    "):
            fields[current] += " " + line.strip()
        else:
            current = None
    return {field: _words(text) for field, text in fields.items()}


def page_fields(name: str) -> dict[str, str]:
    """The ``- **Field:** text`` bullets of the hook's ``### name`` section."""
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    section = re.split(r"^##+ ", text.split(f"\n### {name}\n", 1)[1], maxsplit=1, flags=re.M)[0]
    bullets = re.findall(r"^- \*\*(.+?):\*\* (.*?)(?=^- \*\*|^\S|\Z)", section, flags=re.M | re.S)
    return {field: _words(body) for field, body in bullets if field in FIELDS}


def test_every_hook_of_the_module_is_a_spec_the_manager_knows() -> None:
    assert set(SPECS) == set(SPEC_NAMES)
    assert "fabric_register_commands" in SPECS


@pytest.mark.parametrize("name", sorted(SPECS))
def test_docstring_has_the_five_fields_in_order(name: str) -> None:
    doc = inspect.getdoc(SPECS[name]) or ""
    fields = docstring_fields(name)
    assert list(fields) == list(FIELDS), f"{name}'s docstring needs the fields {FIELDS} in order: {list(fields)}"
    summary = doc.split("\n\n", 1)[0]
    assert not re.match(rf"^({'|'.join(FIELDS)}):", summary), f"{name}'s docstring starts without a summary"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_call_field_matches_firstresult(name: str) -> None:
    firstresult = getattr(SPECS[name], f"{hookspecs.PROJECT_NAME}_spec")["firstresult"]
    call = docstring_fields(name)["Call"]
    assert call.startswith("firstresult" if firstresult else "broadcast"), (name, call)
    owner = docstring_fields(name)["Owner"]
    assert owner.startswith("single owner") == (name in hookspecs.SINGLE_OWNER_HOOKS), (name, owner)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_reference_page_says_what_the_docstring_says(name: str) -> None:
    documented = page_fields(name)
    declared = docstring_fields(name)
    for field in FIELDS:
        assert documented.get(field) == declared[field], (
            f"'### {name}' in docs/reference/hooks.md says {field}: {documented.get(field)!r}, but the hookspec's "
            f"docstring says {declared[field]!r}. Change both together."
        )


def test_the_check_catches_a_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    def fabric_on_launch(fabric: Any) -> None:
        """The processes are up.

        When: at some other time.
        How often: once per process.
        Call: broadcast.
        Returns: nothing; the return values are ignored.
        Owner: any number of implementations.
        """

    monkeypatch.setitem(SPECS, "fabric_on_launch", fabric_on_launch)
    with pytest.raises(AssertionError, match="Change both together"):
        test_reference_page_says_what_the_docstring_says("fabric_on_launch")
