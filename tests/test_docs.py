"""The documentation stays true to the code (Datasette-style meta-tests).

* Every hookspec has a ``### <name>`` heading in ``docs/reference/hooks.md`` whose code
  block shows its exact argument list, and whose call type and ownership match the spec;
  every hookspec is mentioned in some test file.
* Every page in the ``mkdocs.yml`` nav exists, every page is in the nav, and relative
  links between pages resolve.
* Every ``python`` code block preceded by ``<!-- run -->`` runs without raising, in a
  temporary working directory. Every other ``python`` block (multi-process scripts that
  need launching, fragments) at least compiles.
* The plugin tutorial (``docs/plugins/writing.md``) works: its files, written out as an
  installed distribution, are discovered, register their names, follow the entry-point
  import rule, and its sample ``fabric plugins`` output is the real one.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from fabric_core import Fabric, __version__, hookspecs
from fabric_core.cli import main as cli_main
from tests._fake_dist import FakeSite

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOKS_PAGE = DOCS / "reference" / "hooks.md"
CLI_PAGE = DOCS / "reference" / "cli.md"
TUTORIAL = DOCS / "plugins" / "writing.md"

#: Nav pages written by other engineers that may not have landed yet. Remove a name once
#: its page exists, so that its absence fails again.
PENDING_PAGES: set[str] = set()

#: ``<!-- run -->`` marks a block that the test suite executes.
RUN_MARKER = "run"
#: ``<!-- run-installed -->`` marks a tutorial block that needs the tutorial's add-on.
RUN_INSTALLED_MARKER = "run-installed"
#: ``<!-- file: path -->`` marks a block holding the whole text of a file: in the tutorial, the
#: add-on's files (installed and tested below); elsewhere, complete scripts that start several
#: processes, which are only compiled here.
FILE_MARKER = re.compile(r"^file:\s*(?P<path>\S+)$")


# -- reading Markdown --------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeBlock:
    page: Path
    line: int  # 1-based line of the first line of code
    language: str
    code: str
    marker: str  # the text of the HTML comment right above the fence, or ""

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<language>[\w+-]*)\s*$")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<text>.*?)\s*-->\s*$")


def code_blocks(page: Path) -> list[CodeBlock]:
    """The fenced code blocks of ``page``, with the ``<!-- ... -->`` comment above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or not opening["language"]:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [line[indent:] for line in lines[index + 1 : end]]
        above = index - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        comment = _COMMENT.match(lines[above]) if above >= 0 else None
        blocks.append(
            CodeBlock(
                page=page,
                line=index + 2,
                language=opening["language"],
                code="\n".join(body) + "\n",
                marker=comment["text"] if comment else "",
            )
        )
        index = end + 1
    return blocks


def sections(page: Path, level: str = "###") -> dict[str, str]:
    """Heading text to the text under it, for headings of exactly ``level``."""
    text = page.read_text(encoding="utf-8")
    parts = re.split(rf"^{level} (.+)$", text, flags=re.MULTILINE)
    found: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        # A section ends at the next heading of any level.
        found[heading.strip()] = re.split(r"^#{1,6} ", body, maxsplit=1, flags=re.MULTILINE)[0]
    return found


# -- hooks -------------------------------------------------------------------------------------


def _hookspecs() -> dict[str, Any]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if name.startswith("fabric_") and callable(function) and hasattr(function, marker)
    }


HOOKSPECS = _hookspecs()


def _signature_line(name: str) -> str:
    return f"{name}({', '.join(inspect.signature(HOOKSPECS[name]).parameters)})"


def test_hookspecs_are_found() -> None:
    assert len(HOOKSPECS) >= 20, sorted(HOOKSPECS)
    assert set(hookspecs.SINGLE_OWNER_HOOKS) <= set(HOOKSPECS)
    assert set(hookspecs.REGISTRATION_HOOKS.values()) <= set(HOOKSPECS)


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_has_a_heading_with_its_exact_signature(name: str) -> None:
    documented = sections(HOOKS_PAGE)
    assert name in documented, f"docs/reference/hooks.md has no '### {name}' heading."
    blocks = re.findall(r"```\w*\n(.*?)```", documented[name], flags=re.DOTALL)
    assert blocks, f"The '### {name}' section of docs/reference/hooks.md has no code block."
    expected = _signature_line(name)
    first_line = blocks[0].strip().splitlines()[0]
    assert first_line == expected, (
        f"docs/reference/hooks.md shows {first_line!r} under '### {name}', but the hookspec is {expected!r}."
    )


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_section_states_call_type_and_owner(name: str) -> None:
    text = sections(HOOKS_PAGE)[name]
    firstresult = getattr(HOOKSPECS[name], f"{hookspecs.PROJECT_NAME}_spec")["firstresult"]
    call = "**Call:** firstresult" if firstresult else "**Call:** broadcast"
    assert call in text, f"'### {name}' in docs/reference/hooks.md should say {call!r}."
    single_owner = name in hookspecs.SINGLE_OWNER_HOOKS
    assert ("**Owner:** single owner" in text) == single_owner, (
        f"'### {name}' in docs/reference/hooks.md should {'' if single_owner else 'not '}say '**Owner:** single owner'."
    )
    for field in ("**When:**", "**How often:**", "**Returns:**"):
        assert field in text, f"'### {name}' in docs/reference/hooks.md lacks {field}."


def test_hooks_page_documents_no_hook_that_does_not_exist() -> None:
    stale = sorted(heading for heading in sections(HOOKS_PAGE) if heading not in HOOKSPECS)
    assert not stale, f"docs/reference/hooks.md documents hooks that fabric_core.hookspecs lacks: {stale}"


def test_every_hook_is_mentioned_in_a_test() -> None:
    test_files = [path for path in (ROOT / "tests").rglob("test_*.py") if path.name != Path(__file__).name]
    text = "\n".join(path.read_text(encoding="utf-8") for path in test_files)
    untested = sorted(name for name in HOOKSPECS if not re.search(rf"\b{name}\b", text))
    assert not untested, f"hooks with no test under tests/: {', '.join(untested)}"


# -- the site's pages ----------------------------------------------------------------------------


def _nav_pages() -> list[str]:
    """The ``.md`` paths listed in ``mkdocs.yml``'s nav, read without a YAML dependency."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = re.search(r"^nav:\s*\n((?:[ \t]+.*\n|\s*\n)*)", text, flags=re.MULTILINE)
    assert nav is not None, "mkdocs.yml has no nav."
    return re.findall(r"([\w./-]+\.md)\s*$", nav.group(1), flags=re.MULTILINE)


def test_every_nav_page_exists() -> None:
    pages = _nav_pages()
    assert "index.md" in pages
    missing = [page for page in pages if not (DOCS / page).is_file()]
    if missing and set(missing) <= PENDING_PAGES:
        pytest.xfail(f"pages being written by others: {missing}")
    assert not missing, f"mkdocs.yml lists pages that do not exist under docs/: {missing}"


def test_every_page_is_in_the_nav() -> None:
    pages = set(_nav_pages())
    orphans = sorted(
        str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md") if str(path.relative_to(DOCS)) not in pages
    )
    assert not orphans, f"pages under docs/ missing from the nav in mkdocs.yml: {orphans}"


def test_relative_links_between_pages_resolve() -> None:
    broken = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            if not resolved.is_file() and resolved.relative_to(DOCS.resolve()).as_posix() not in PENDING_PAGES:
                broken.append(f"{page.relative_to(DOCS)} -> {target}")
    assert not broken, f"links to missing pages: {broken}"


# -- runnable examples -----------------------------------------------------------------------------


def _runnable(marker: str) -> list[CodeBlock]:
    return [
        block
        for page in sorted(DOCS.rglob("*.md"))
        for block in code_blocks(page)
        if block.language == "python" and block.marker == marker
    ]


RUNNABLE = _runnable(RUN_MARKER)


def test_guide_and_index_have_runnable_examples() -> None:
    pages = {block.page.relative_to(DOCS).as_posix() for block in RUNNABLE}
    assert "index.md" in pages
    assert {"guide/fabric.md", "guide/precision.md"} <= pages


@contextlib.contextmanager
def _isolated(directory: Path) -> Iterator[None]:
    """Run an example in ``directory`` and undo what examples change process-wide."""
    environment = dict(os.environ)
    dtype = torch.get_default_dtype()
    matmul = torch.get_float32_matmul_precision()
    root_level = logging.getLogger().level
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environment)
        torch.set_default_dtype(dtype)
        torch.set_float32_matmul_precision(matmul)
        logging.getLogger().setLevel(root_level)


def _execute(block: CodeBlock, namespace: dict[str, Any]) -> None:
    # Pad with blank lines so a traceback points at the line in the Markdown file.
    source = "\n" * (block.line - 1) + block.code
    try:
        exec(compile(source, str(block.page), "exec"), namespace)
    finally:
        # Tear down here rather than at interpreter exit, while still in the temporary
        # directory, so that loggers flush their files there.
        for value in list(namespace.values()):
            if isinstance(value, Fabric):
                value._teardown()


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.label for block in RUNNABLE])
def test_doc_example_runs(block: CodeBlock, tmp_path: Path) -> None:
    with _isolated(tmp_path):
        _execute(block, {"__name__": "__docs__"})


def test_every_python_block_compiles() -> None:
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in code_blocks(page):
            if block.language != "python":
                continue
            try:
                compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
            except SyntaxError as err:
                broken.append(f"{block.label}: {err}")
    assert not broken, f"python blocks that do not compile: {broken}"


# -- the plugin tutorial -----------------------------------------------------------------------------


def _load_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 has no tomllib; its predecessor is optional
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(text)  # type: ignore[no-any-return]


def _tutorial_files() -> dict[str, str]:
    files = {}
    for block in code_blocks(TUTORIAL):
        match = FILE_MARKER.match(block.marker)
        if match:
            files[match["path"]] = block.code
    return files


def _tutorial_distribution() -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The tutorial's ``[project]`` table, its entry points, and its modules by dotted name."""
    files = _tutorial_files()
    (pyproject_path,) = [path for path in files if path.endswith("pyproject.toml")]
    project = _load_toml(files[pyproject_path])["project"]
    # Step by step, the tutorial adds entry points in later TOML snippets: take them all.
    entry_points: dict[str, str] = {}
    for block in code_blocks(TUTORIAL):
        if block.language == "toml":
            entry_points.update(
                _load_toml(block.code).get("project", {}).get("entry-points", {}).get("fabric_core", {})
            )
    root = pyproject_path.rsplit("/", 1)[0] + "/"
    modules = {}
    for path, code in files.items():
        if path.endswith(".py") and not path.startswith(root + "tests/"):
            # A package keeps its ".__init__": FakeSite writes it as the package's __init__.py.
            modules[path[len(root) : -len(".py")].replace("/", ".")] = code
    return project, entry_points, modules


def test_tutorial_declares_the_group_and_a_capped_core_requirement() -> None:
    project, entry_points, modules = _tutorial_distribution()
    assert project["name"] == "fabric-myprecision"
    assert any(re.fullmatch(r"fabric-core>=[\d.]+,<\d+", requirement) for requirement in project["dependencies"])
    assert entry_points == {"myprecision": "fabric_myprecision", "trace": "fabric_myprecision.trace"}
    assert {module.removesuffix(".__init__") for module in modules} >= set(entry_points.values())


def test_tutorial_entry_point_modules_import_only_fabric_core_and_the_stdlib() -> None:
    _, entry_points, modules = _tutorial_distribution()
    for module in entry_points.values():
        source = modules.get(module) or modules[f"{module}.__init__"]
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        outside = sorted(name for name in imported if name != "fabric_core" and name not in sys.stdlib_module_names)
        assert not outside, f"the tutorial's entry-point module {module} imports {outside}"


@pytest.fixture
def tutorial_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    """The tutorial's add-on, installed as a distribution on ``sys.path``, with autoload on."""
    project, entry_points, modules = _tutorial_distribution()
    monkeypatch.delenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("FABRIC_PLUGINS", raising=False)
    monkeypatch.delenv("FABRIC_BLOCK_PLUGINS", raising=False)
    with FakeSite(tmp_path / "site", monkeypatch) as site:
        site.add(
            project["name"],
            version=project["version"],
            modules=modules,
            entry_points=entry_points,
            requires=project["dependencies"],
        )
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site.root), os.environ.get("PYTHONPATH", "")]))
        yield site


def _plugins_output(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["plugins", *args]) == 0
    return out.getvalue()


def _text_blocks_after(page: Path, command: str) -> list[str]:
    """The ``text`` blocks of ``page`` that show the output of ``command``."""
    blocks = [block for block in code_blocks(page) if block.language == "text"]
    shown = [block.code for block in blocks if block.code.startswith(f"$ {command}\n")]
    return [code.split("\n", 1)[1] for code in shown]


def _listing_blocks(listing: str) -> dict[str, list[str]]:
    """``fabric plugins`` output as header line (versions normalized) to its indented lines."""
    blocks: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in _normalize_versions(listing).splitlines():
        if line and not line.startswith(" "):
            lines = blocks.setdefault(line, [])
        elif line.strip():
            lines.append(line.strip())
    return blocks


def _listing_differences(shown: str, actual: str) -> list[str]:
    """Where a documented ``fabric plugins`` listing disagrees with the real one.

    Every entry point the page shows must be in the real output with exactly the lines
    shown (its status, reason, names and hooks); the real output may have more entry
    points (other add-ons installed where the tests run).
    """
    real = _listing_blocks(actual)
    problems = []
    for header, lines in _listing_blocks(shown).items():
        if header not in real:
            problems.append(f"no entry point {header!r} in the real output")
        elif lines != real[header]:
            problems.append(f"{header}: the page shows {lines}, the real output {real[header]}")
    return problems


def test_tutorial_plugins_listing_is_the_real_one(tutorial_site: FakeSite) -> None:
    shown = [
        block.code
        for block in code_blocks(TUTORIAL)
        if block.language == "text" and block.code.startswith("fabric-core ")
    ]
    assert shown, "docs/plugins/writing.md shows no `fabric plugins` output."
    output = _plugins_output()
    assert not _listing_differences(shown[0], output), (
        f"The `fabric plugins` output in docs/plugins/writing.md differs from the real one:\n{output}"
    )
    tutorial_lines = [line for line in shown[0].splitlines() if "myprecision" in line or line.startswith("    hooks:")]
    assert len(tutorial_lines) == 3  # both entry points and the wrapper hook are shown


def test_tutorial_descriptions_are_shown_by_fabric_plugins_verbose(tutorial_site: FakeSite) -> None:
    output = _plugins_output("-v")
    assert "        tf32: float32 weights, TF32 matrix multiplications\n" in output, output
    assert "        bf16-matmul: float32 weights, bfloat16 matrix multiplications\n" in output, output


def test_tutorial_code_runs_with_the_add_on_installed(tutorial_site: FakeSite, tmp_path: Path) -> None:
    files = _tutorial_files()
    tests = [code for path, code in files.items() if "/tests/test_" in path]
    assert tests, "docs/plugins/writing.md shows no test file for the add-on."
    with _isolated(tmp_path):
        fabric = Fabric(accelerator="cpu", precision="bf16-matmul")
        assert fabric.strategy.precision.matmul_precision == "medium"
        for block in code_blocks(TUTORIAL):
            if block.language == "python" and block.marker == RUN_INSTALLED_MARKER:
                _execute(block, {"__name__": "__docs__"})
        for code in tests:
            namespace: dict[str, Any] = {"__name__": "test_myprecision"}
            exec(compile(code, str(TUTORIAL), "exec"), namespace)
            for name, function in namespace.items():
                if name.startswith("test_") and callable(function):
                    function()


def test_tutorial_has_examples_that_need_the_add_on() -> None:
    assert any(block.marker == RUN_INSTALLED_MARKER for block in code_blocks(TUTORIAL))


# -- the command-line reference ----------------------------------------------------------------------


def _normalize_versions(text: str) -> str:
    return text.replace(f"fabric-core {__version__}", "fabric-core X").replace("fabric-core 0.1.0", "fabric-core X")


def test_cli_reference_shows_the_real_core_listing(monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    (shown,) = _text_blocks_after(CLI_PAGE, "fabric plugins")
    output = _plugins_output()
    assert not _listing_differences(shown, output), (
        f"docs/reference/cli.md shows a `fabric plugins` listing that the real one contradicts:\n{output}"
    )


def test_cli_reference_shows_the_real_core_json(monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    (shown,) = _text_blocks_after(CLI_PAGE, "fabric plugins --json")
    documented = json.loads(shown)
    actual = json.loads(_plugins_output("--json"))
    assert set(documented) == set(actual) == {"plugins", "conflicts"}

    def core(listing: dict[str, Any]) -> dict[str, Any]:
        (record,) = [r for r in listing["plugins"] if r["distribution"] == "fabric-core"]
        return record

    documented_core, actual_core = core(documented), core(actual)
    assert set(documented_core) == set(actual_core), "the `--json` record in docs/reference/cli.md has other fields"
    for key in ("entry_point", "status", "reason", "error", "aliases", "hooks"):
        assert documented_core[key] == actual_core[key], f"`--json` field {key!r} in docs/reference/cli.md differs"
    for kind, names in documented_core["provides"].items():
        assert set(names) <= set(actual_core["provides"].get(kind, [])), f"`--json` provides {kind} differs"


# -- the methods plugin authors override ---------------------------------------------------------------

SIGNATURES_MARKER = re.compile(r"^signatures:\s*(?P<target>[\w.]+)$")


def _signature_blocks() -> list[tuple[str, CodeBlock]]:
    return [
        (match["target"], block)
        for block in code_blocks(TUTORIAL)
        if (match := SIGNATURES_MARKER.match(block.marker)) is not None
    ]


def _documented_parameters(function: ast.FunctionDef) -> list[tuple[str, str, str | None, str | None]]:
    """``(kind, name, annotation, default)`` of each parameter of a ``def`` stub, as source text."""
    arguments = function.args
    plain = arguments.posonlyargs + arguments.args
    defaults: list[ast.expr | None] = [None] * (len(plain) - len(arguments.defaults)) + list(arguments.defaults)
    found = []
    for argument, default in zip(plain, defaults, strict=True):
        found.append(("POSITIONAL_OR_KEYWORD", argument.arg, _text(argument.annotation), _text(default)))
    if arguments.vararg is not None:
        found.append(("VAR_POSITIONAL", arguments.vararg.arg, _text(arguments.vararg.annotation), None))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        found.append(("KEYWORD_ONLY", argument.arg, _text(argument.annotation), _text(default)))
    if arguments.kwarg is not None:
        found.append(("VAR_KEYWORD", arguments.kwarg.arg, _text(arguments.kwarg.annotation), None))
    return found


def _text(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def _real_parameters(function: Any) -> tuple[list[tuple[str, str, str | None, str | None]], str | None]:
    signature = inspect.signature(function)
    parameters = []
    for parameter in signature.parameters.values():
        annotation = None if parameter.annotation is inspect.Parameter.empty else str(parameter.annotation)
        default = None if parameter.default is inspect.Parameter.empty else repr(parameter.default)
        parameters.append((parameter.kind.name, parameter.name, annotation, default))
    returns = None if signature.return_annotation is inspect.Signature.empty else str(signature.return_annotation)
    return parameters, returns


def test_the_tutorial_shows_the_strategy_and_precision_methods() -> None:
    targets = [target for target, _ in _signature_blocks()]
    assert targets == ["fabric_core.strategies.Strategy", "fabric_core.precision.Precision"], targets


@pytest.mark.parametrize("target, block", _signature_blocks(), ids=[target for target, _ in _signature_blocks()])
def test_documented_signatures_are_the_real_ones(target: str, block: CodeBlock) -> None:
    import importlib

    module_name, class_name = target.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    (documented_class,) = [node for node in ast.parse(block.code).body if isinstance(node, ast.ClassDef)]
    wrong = []
    for stub in documented_class.body:
        if not isinstance(stub, ast.FunctionDef):
            continue
        real = inspect.getattr_static(cls, stub.name, None)
        if real is None:
            wrong.append(f"{stub.name}: {class_name} has no such method")
            continue
        function = real.fget if isinstance(real, property) else getattr(cls, stub.name)
        parameters, returns = _real_parameters(function)
        shown = (_documented_parameters(stub), _text(stub.returns))
        if shown != (parameters, returns):
            wrong.append(f"{stub.name}: the page shows {shown}, the code has {(parameters, returns)}")
    assert not wrong, f"{block.label} ({target}) disagrees with the code:\n" + "\n".join(wrong)


# -- the site --------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_the_site_builds_with_mkdocs_strict(tmp_path: Path) -> None:
    """What CI runs: `mkdocs build --strict` (every page in the nav, no broken link or anchor)."""
    pytest.importorskip("material", reason="mkdocs-material is not installed: pip install -e '.[docs]'")
    import subprocess

    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    assert (tmp_path / "site" / "guide" / "testing" / "index.html").is_file()
