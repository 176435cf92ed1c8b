"""Warning categories, and switching off the ones that are only hints."""

from __future__ import annotations

import warnings

__all__ = ["PossibleUserWarning", "disable_possible_user_warnings"]


class PossibleUserWarning(UserWarning):
    """A warning about something that may be intended (a hint, not an error)."""


def disable_possible_user_warnings(module: str = "") -> None:
    """Ignore :class:`PossibleUserWarning` (from modules matching the regex ``module``, all by default)."""
    warnings.filterwarnings("ignore", category=PossibleUserWarning, module=module)
