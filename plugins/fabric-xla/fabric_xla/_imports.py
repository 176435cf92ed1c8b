"""Whether torch_xla is installed and built for the installed torch, said before importing it.

torch_xla is a compiled extension of one torch release: torch_xla 2.9.x runs on torch 2.9.x
and nothing else (on another torch, its import fails with undefined C++ symbols). Its
package does not declare that requirement, so ``pip install fabric-xla`` on top of another
torch installs a torch_xla that cannot load. These checks read both versions from the
installed distributions' metadata, without importing torch_xla, and name both and what to
install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from types import ModuleType

#: The torch_xla release this add-on is developed and tested with, and the torch it needs.
TESTED_TORCH_XLA = "2.9.0"
TESTED_TORCH = "2.9.1"


class XLANotAvailableError(ImportError):
    """fabric-xla is installed, but torch_xla is missing, built for another torch, or fails to import."""


def _release(version: str) -> tuple[int, int] | None:
    """``"2.9.1+cu128"`` -> ``(2, 9)``; ``None`` when the version does not start with two numbers."""
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def installed_version(distribution: str) -> str | None:
    """The version of an installed distribution, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def mismatch_message(what: str, torch_version: str, torch_xla_version: str) -> str | None:
    """Why ``torch_xla_version`` cannot run on ``torch_version``, or ``None`` when they match.

    :param what: what was asked for (``"accelerator='tpu'"``), to begin the message with.
    """
    torch_release, xla_release = _release(torch_version), _release(torch_xla_version)
    if torch_release is None or xla_release is None or torch_release == xla_release:
        return None
    xla_line = f"{xla_release[0]}.{xla_release[1]}"
    torch_line = f"{torch_release[0]}.{torch_release[1]}"
    return (
        f"{what} runs on torch_xla, but the installed torch_xla {torch_xla_version} is built for torch {xla_line}.x "
        f"and the installed torch is {torch_version}: torch_xla only loads on the torch release it was built for. "
        f"Install a matching pair, for example: pip install 'torch=={xla_line}.*' 'torch-xla=={torch_xla_version}' "
        f"(or a torch_xla {torch_line} release, pip install 'torch-xla=={torch_line}.*', if one is published; "
        f"fabric-xla is tested with torch {TESTED_TORCH} and torch-xla {TESTED_TORCH_XLA})."
    )


def missing_message(what: str, torch_version: str) -> str:
    release = _release(torch_version)
    line = f"{release[0]}.{release[1]}" if release is not None else None
    matching = f"pip install 'torch-xla=={line}.*'" if line is not None else "pip install torch-xla"
    return (
        f"{what} runs on torch_xla, which is not installed (fabric-xla is, without it). Install the torch_xla "
        f"release built for your torch {torch_version}: {matching}; or both together, as fabric-xla is tested: "
        f"pip install 'torch=={TESTED_TORCH}' 'torch-xla=={TESTED_TORCH_XLA}'."
    )


def check_torch_xla(what: str) -> None:
    """Raise :class:`XLANotAvailableError` when torch_xla is missing or built for another torch.

    Cheap: reads metadata only, never imports torch_xla.
    """
    import torch

    torch_version = torch.__version__
    if importlib.util.find_spec("torch_xla") is None:
        raise XLANotAvailableError(missing_message(what, torch_version))
    xla_version = installed_version("torch_xla") or installed_version("torch-xla")
    if xla_version is not None:
        problem = mismatch_message(what, torch_version, xla_version)
        if problem is not None:
            raise XLANotAvailableError(problem)


def import_torch_xla(what: str) -> ModuleType:
    """``import torch_xla`` after :func:`check_torch_xla`; an import that still fails names the fix.

    The original exception is chained, so a broken installation shows its own traceback.
    """
    check_torch_xla(what)
    try:
        return importlib.import_module("torch_xla")
    except Exception as err:
        import torch

        raise XLANotAvailableError(
            f"{what} runs on torch_xla, which is installed ({installed_version('torch_xla') or 'version unknown'}) "
            f"but failed to import ({type(err).__name__}: {err}). It must be built for the installed torch "
            f"{torch.__version__}; reinstall a matching pair, for example: pip install --force-reinstall "
            f"'torch=={TESTED_TORCH}' 'torch-xla=={TESTED_TORCH_XLA}'."
        ) from err
