"""Fake installed distributions: real ``*.dist-info`` folders on ``sys.path``, no ``pip install``.

``importlib.metadata`` finds a distribution through a ``<name>-<version>.dist-info`` folder
on ``sys.path``: its ``METADATA`` gives the name, version and requirements, its
``entry_points.txt`` the entry points. Writing those files (and the plugin's modules) into
a temporary folder and putting the folder on ``sys.path`` is exactly what an installed
wheel looks like to discovery, so a test exercises the real mechanism, in this process
and, through ``PYTHONPATH`` (:attr:`FakeSite.root`), in the processes it starts.

Most tests want the ``fabric_plugins`` fixture (:class:`~fabric_core.testing.PluginSandbox`),
which builds on this and also chooses which add-ons load. :class:`FakeSite` on its own::

    @pytest.fixture
    def site(tmp_path, monkeypatch):
        with FakeSite(tmp_path / "site", monkeypatch) as fake:
            yield fake
"""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["COMPATIBLE", "EMPTY_PLUGIN", "FakeSite", "broken_plugin", "strategy_plugin"]

#: what a well-behaved add-on declares for the running core (0.x)
COMPATIBLE = "fabric-core>=0.1,<1"

#: a plugin module registering nothing, for tests that only need an entry point
EMPTY_PLUGIN = '"""An add-on that registers nothing."""\n'

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


class FakeSite:
    """A folder on ``sys.path`` holding fake distributions.

    :param root: the folder to use (created when missing).
    :param monkeypatch: puts ``root`` first on ``sys.path`` and takes it off after the test.
    """

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._modules: set[str] = set()
        monkeypatch.syspath_prepend(str(root))

    def add(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        modules: Mapping[str, str] | None = None,
        entry_points: Mapping[str, str] | None = None,
        requires: Sequence[str] = (COMPATIBLE,),
    ) -> Path:
        """Write distribution ``name`` and return its ``.dist-info`` folder.

        Adding a name again replaces that distribution's metadata (same version).

        :param modules: module name (``"fabric_foo"`` or ``"fabric_foo.impl"``) to source
            text; dots become packages, whose ``__init__.py`` is empty unless given as
            ``"fabric_foo.__init__"``. The source is dedented.
        :param entry_points: ``[fabric_core]`` entry points, entry-point name to ``"module"``
            or ``"module:attr"``; by default one entry point named after the first module.
        :param requires: ``Requires-Dist`` lines.
        :raises ValueError: for a name that is not a valid distribution name, or when
            there is neither a module nor an entry point.
        """
        if not _NAME.match(name):
            raise ValueError(
                f"FakeSite.add({name!r}): not a distribution name; use letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit (for example 'fabric-mine')."
            )
        modules = dict(modules or {})
        for module_name, source in modules.items():
            self._write_module(module_name, source)
        if entry_points is None:
            first = next(iter(modules), None)
            if first is None:
                raise ValueError(f"FakeSite.add({name!r}) needs modules= or entry_points=.")
            module = first.removesuffix(".__init__")
            entry_points = {module.rsplit(".", 1)[-1]: module}

        dist_info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir(exist_ok=True)
        metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
        (dist_info / "METADATA").write_text("\n".join(metadata) + "\n", encoding="utf-8")
        lines = ["[fabric_core]"] + [f"{key} = {value}" for key, value in entry_points.items()]
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (dist_info / "top_level.txt").write_text(
            "\n".join(sorted({m.split(".")[0] for m in modules})) + "\n", encoding="utf-8"
        )
        # Both the import system and importlib.metadata cache directory listings.
        importlib.invalidate_caches()
        return dist_info

    def _write_module(self, module_name: str, source: str) -> None:
        parts = module_name.split(".")
        folder = self.root
        for package in parts[:-1]:
            folder = folder / package
            folder.mkdir(exist_ok=True)
            init = folder / "__init__.py"
            if not init.exists():
                init.write_text("", encoding="utf-8")
        (folder / f"{parts[-1]}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self._modules.add(parts[0])

    def close(self) -> None:
        """Forget the modules written here that the test imported."""
        for loaded in list(sys.modules):
            if loaded.split(".")[0] in self._modules:
                del sys.modules[loaded]
        importlib.invalidate_caches()

    def __enter__(self) -> FakeSite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def strategy_plugin(strategy: str, factory: str, description: str = "a third-party strategy") -> str:
    """Source of a plugin module registering one strategy, ``factory`` being a ``"module:Class"`` string."""
    return f"""
        from fabric_core.hookspecs import hookimpl


        @hookimpl
        def fabric_register_strategies(registry):
            registry.add({strategy!r}, {factory!r}, description={description!r})
        """


def broken_plugin(message: str) -> str:
    """Source of a plugin module that raises ImportError when imported (a missing backend)."""
    return f"""
        raise ImportError({message!r})
        """
