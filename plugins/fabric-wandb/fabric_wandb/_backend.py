"""The ``wandb`` package, imported only when needed, and what stands in for a run on other ranks."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Mapping
from typing import Any


def require_wandb() -> None:
    """Raise ``ModuleNotFoundError`` naming the fix when the wandb package is missing (without importing it)."""
    try:
        found = importlib.util.find_spec("wandb") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ModuleNotFoundError(
            "WandbLogger logs with the wandb package, which is not installed. "
            "pip install wandb (or reinstall fabric-wandb, which depends on it).",
            name="wandb",
        )


def import_wandb() -> Any:
    """The ``wandb`` module, or an ``ImportError`` that names the fix, the cause chained."""
    try:
        import wandb
    except Exception as err:
        raise ImportError(
            f"WandbLogger could not import wandb ({type(err).__name__}: {err}). "
            "pip install --force-reinstall wandb, or reinstall fabric-wandb."
        ) from err
    return wandb


def check_init_arguments(wandb: Any, arguments: Mapping[str, Any]) -> None:
    """Refuse, by name, keywords that this version of ``wandb.init`` does not take."""
    parameters = inspect.signature(wandb.init).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise TypeError(
            f"WandbLogger passes {unknown} on to wandb.init, which takes no such argument (wandb "
            f"{getattr(wandb, '__version__', '?')}; it takes {sorted(parameters)}). Remove or correct them."
        )


class NoRun:
    """``experiment`` on ranks other than 0: every attribute is itself, every call does nothing."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> NoRun:
        return self

    def __getitem__(self, key: Any) -> NoRun:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass
