"""One environment per distribution: the core's suite and each add-on's suite run apart.

``nox`` (no arguments) runs the default sessions: ``core``, then one session per add-on
folder under ``plugins/`` (``fabric-deepspeed`` -> ``deepspeed``), each in a fresh virtual
environment holding only that distribution and what its ``test`` extra asks for, so
torch_xla's torch pin, mlflow's size or DeepSpeed's compiled ops never reach another suite.
``nox -s lint docs`` runs ruff, mypy and the strict docs build (CI runs them after the tests).

pip's wheel cache is shared between the sessions (torch 2.13.0 is a local CPU wheel on the
development machines); DeepSpeed's JIT-built CPU ops are cached in ``TORCH_EXTENSIONS_DIR``
(default ``~/.cache/torch_extensions``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
#: The CPU build the development and CI machines pin; the package itself accepts a range.
TORCH = "torch==2.13.0"
#: Add-ons whose runtime needs another torch than the core's development pin.
TORCH_FOR = {"fabric-xla": ("torch==2.9.1", "torch-xla==2.9.0")}
#: Environment every session's tests run with: no bytecode files in the tree, and
#: DeepSpeed's CPU ops built once per machine.
ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions")),
}

nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
# Two sessions at a time: the core's suite (the longest) beside the add-ons' one after the
# other. Installs and the suites' waits (process start-up, rendezvous, timeouts) overlap, so
# the whole run takes about two thirds of the serial time on two cores. `nox -j 1` for serial.
nox.options.parallel = 2
nox.options.allow_parallel = True


def addons() -> list[Path]:
    """The add-on distributions: every ``plugins/*/`` folder with a ``pyproject.toml``."""
    return sorted(path.parent for path in ROOT.glob("plugins/*/pyproject.toml"))


@nox.session
def core(session: nox.Session) -> None:
    """fabric-core's own suite (``tests/``, or the paths and options after ``--``), with no add-on installed."""
    session.install(TORCH, "-e", ".[test]")
    # The slowest tests in the log: the core's suite is the longest session of CI.
    session.run("python", "-m", "pytest", "--durations=15", *(session.posargs or ["tests"]), env=ENV)


def _addon_session(folder: Path) -> None:
    distribution = folder.name

    def run(session: nox.Session) -> None:
        session.install(*TORCH_FOR.get(distribution, (TORCH,)))
        session.install("-e", ".[test]", "-e", f"{folder.relative_to(ROOT)}[test]")
        session.run("python", "-m", "pytest", str(folder.relative_to(ROOT) / "tests"), *session.posargs, env=ENV)

    run.__doc__ = f"The {distribution} add-on's suite, in an environment with only it and fabric-core."
    nox.session(name=distribution.removeprefix("fabric-"))(run)


for _folder in addons():
    _addon_session(_folder)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy (strict) over the core and every add-on package.

    pytest (the test kit's fixtures) and the add-ons with light dependencies are installed so
    their types are checked against the real libraries; those with heavy ones (torch_xla,
    mlflow, wandb) are type-checked with their libraries' imports as ``Any``
    (``ignore_missing_imports``).
    """
    session.install(
        TORCH, "nox", "-e", ".[lint,test]", "-e", "plugins/fabric-deepspeed", "-e", "plugins/fabric-tensorboard"
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", env=ENV)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """The documentation site, built with ``--strict`` (a broken link or anchor fails it)."""
    session.install(TORCH, "-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site"))
