"""Every error and warning fabric-core raises on purpose, importable from one place.

``from fabric_core.errors import PluginNotAvailableError`` works for each name in
:data:`__all__`, and gives the very class the core raises (the modules that raise them
import them from here, or this module re-exports theirs), so ``except`` clauses in user
code and add-ons never need a private import.

The plugin layer's errors carry what they are about as attributes, not only in their
text: ``err.kind`` and ``err.name`` (``"strategy"``, ``"deepspeed"``), ``err.distribution``
(the add-on involved), ``err.plugin`` and ``err.hook`` (a hook implementation that does
not fit the contract). Their messages say what was asked, why it cannot be, and what to do.
So do the checkpoint errors (``err.path``, ``err.reason``, one of
:data:`CheckpointErrorReason`, and ``err.files``) and :class:`CollectiveError`
(``err.operation``, ``err.rank``, ``err.timed_out``, ``err.missing_ranks``).

The plugin-layer classes are defined here (this module imports only the standard
library); the others live with the code that raises them and are imported from there on
first use. See docs/guide/errors.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from fabric_core.callbacks.loss_spike import LossSpikeError, LossSpikeWarning
    from fabric_core.checkpoint_io import CheckpointError, UnsafeCheckpointError
    from fabric_core.environments._variables import EnvironmentVariableError, MissingEnvironmentVariableError
    from fabric_core.strategies.collectives import CollectiveError
    from fabric_core.utilities.rank_zero import LightningDeprecationWarning
    from fabric_core.utilities.warnings import PossibleUserWarning

__all__ = [
    "AddonNotInstalledError",
    "CheckpointError",
    "CollectiveError",
    "DuplicateNameError",
    "EnvironmentVariableError",
    "FabricPluginWarning",
    "LightningDeprecationWarning",
    "LossSpikeError",
    "LossSpikeWarning",
    "MissingEnvironmentVariableError",
    "PluginNotAvailableError",
    "PluginValidationError",
    "PossibleUserWarning",
    "ReservedNameError",
    "UnsafeCheckpointError",
]

#: Why a checkpoint could not be used: the ``reason`` of a :class:`CheckpointError`.
#:
#: - ``"corrupt"``: the file is damaged or truncated, and its reader failed (a checkpoint
#:   directory's damaged ``fabric_manifest.json`` too);
#: - ``"unsafe"``: it holds Python objects whose unpickling could run code, refused under
#:   ``weights_only=True`` (:class:`UnsafeCheckpointError`);
#: - ``"protocol"``: it was written with a pickle protocol that torch's safe loader cannot
#:   read; not damage, and nothing but torch's classes in it;
#: - ``"not-a-dict"``: it holds something other than a dict of state (``fabric.load_raw``
#:   reads a bare state dict);
#: - ``"mismatch"``: a checkpoint directory does not match its ``fabric_manifest.json``
#:   (files missing, truncated, changed or foreign; ``err.files`` says which).
#:
#: Not in :data:`__all__` (which lists only errors and warnings); import it by name.
CheckpointErrorReason = Literal["corrupt", "unsafe", "protocol", "not-a-dict", "mismatch"]


class PluginNotAvailableError(ValueError):
    """A name was asked for (``strategy="deepspeed"``) that no loaded plugin provides.

    :ivar kind: the kind of component asked for (``"strategy"``, ``"logger"``, ...).
    :ivar name: the name asked for.
    :ivar distribution: the distribution that provides (or would provide) the name, when
        known: a well-known add-on, or an installed one that did not load; else ``None``.
    :ivar status: why that distribution does not provide it: ``"not-installed"``, or its
        discovery status (``"failed"``, ``"blocked"``, ``"disabled"``, ``"loaded"``, ...);
        ``None`` for a name nobody is known to provide.
    :ivar suggestions: registered names close to ``name``, best first.
    """

    def __init__(
        self,
        message: str = "",
        *,
        kind: str = "",
        name: str = "",
        distribution: str | None = None,
        status: str | None = None,
        suggestions: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.distribution = distribution
        self.status = status
        self.suggestions = suggestions


class PluginValidationError(TypeError):
    """A plugin object does not fit the hook contract: an unknown hook name, arguments the
    hook does not have, or a second owner of a single-owner hook.

    :ivar plugin: the plugin object (a module for an entry point).
    :ivar plugin_name: the name it was registered under (``"fabric-x:x"`` for an entry point).
    :ivar hook: the hook implementation at fault (``"fabric_backward"``, or the misspelled
        name), or ``None``.
    """

    def __init__(
        self, message: str = "", *, plugin: object = None, plugin_name: str | None = None, hook: str | None = None
    ) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.plugin_name = plugin_name
        self.hook = hook


class DuplicateNameError(ValueError):
    """Two distributions registered the same name for the same kind; selecting it raises this.

    :ivar kind: the kind of component (``"strategy"``, ...).
    :ivar name: the name registered twice.
    :ivar distributions: the distributions that registered it.
    """

    def __init__(
        self, message: str = "", *, kind: str = "", name: str = "", distributions: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.distributions = distributions


class ReservedNameError(DuplicateNameError):
    """An add-on registered a name that fabric-core itself provides (``strategy="ddp"``).

    The core's name keeps working; the add-on is not loaded (its discovery record has
    status ``"refused"`` and this error). Block it with ``FABRIC_BLOCK_PLUGINS=<distribution>``.

    :ivar distribution: the add-on that registered the name.
    """

    def __init__(
        self,
        message: str = "",
        *,
        kind: str = "",
        name: str = "",
        distribution: str = "",
    ) -> None:
        super().__init__(message, kind=kind, name=name, distributions=("fabric-core", distribution))
        self.distribution = distribution


class AddonNotInstalledError(ImportError):
    """A Lightning name (``fabric_core.strategies.DeepSpeedStrategy``) whose backend is an
    add-on that is not installed; the message says what to ``pip install``.

    :ivar name: the name asked for (``"DeepSpeedStrategy"``), as for any ``ImportError``.
    :ivar distribution: the add-on that provides it (``"fabric-deepspeed"``).
    """

    def __init__(self, message: str = "", *, name: str | None = None, distribution: str = "") -> None:
        super().__init__(message, name=name)
        self.distribution = distribution


class FabricPluginWarning(UserWarning):
    """Discovery skipped or refused something, or a switch has a value that does nothing.

    :ivar distribution: the plugin's distribution, when the warning is about one.
    :ivar switch: the environment variable at fault (``"FABRIC_BLOCK_PLUGINS"``), when the
        warning is about a switch.
    """

    def __init__(self, message: str = "", *, distribution: str | None = None, switch: str | None = None) -> None:
        super().__init__(message)
        self.distribution = distribution
        self.switch = switch


#: Errors defined beside the code that raises them, imported on first use.
_ELSEWHERE = {
    "CheckpointError": "fabric_core.checkpoint_io",
    "UnsafeCheckpointError": "fabric_core.checkpoint_io",
    "CollectiveError": "fabric_core.strategies.collectives",
    "EnvironmentVariableError": "fabric_core.environments._variables",
    "MissingEnvironmentVariableError": "fabric_core.environments._variables",
    "LossSpikeError": "fabric_core.callbacks.loss_spike",
    "LossSpikeWarning": "fabric_core.callbacks.loss_spike",
    "PossibleUserWarning": "fabric_core.utilities.warnings",
    "LightningDeprecationWarning": "fabric_core.utilities.rank_zero",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the modules that define these import torch, and some of them
    # import this module's classes.
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fabric_core.errors' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
