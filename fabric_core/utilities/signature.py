"""Calling user callbacks with the keyword arguments they accept."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def accepted_kwargs(function: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that ``function`` accepts: all of them when it takes ``**kwargs``.

    A function whose signature cannot be read gets them all, so nothing is hidden from it.
    """
    if not kwargs:
        return {}
    names = _parameter_names(getattr(function, "__func__", function))
    if names is None:
        return dict(kwargs)
    return {name: value for name, value in kwargs.items() if name in names}


@functools.lru_cache(maxsize=1024)
def _parameter_names(function: Callable[..., Any]) -> frozenset[str] | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
