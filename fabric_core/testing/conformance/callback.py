"""The callback suite: a callback fits the hook contract, watches a whole run without changing it, hides no failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fabric_core import hookspecs
from fabric_core.fabric import Fabric
from fabric_core.testing.conformance._runs import train

__all__ = ["CallbackConformance"]


class _RunFailed(Exception):
    """Raised by the suite's run function; the callback must let it reach the caller."""


class CallbackConformance:
    """For callbacks: objects given in ``Fabric(callbacks=[...])``. Implement :meth:`make_callback`.

    A callback has methods that your loop calls through ``fabric.call`` (the suite calls
    the example trainer's: ``on_train_start``, ``on_train_batch_end``, ..., each with the
    keyword arguments it names), and may implement ``fabric_on_*`` event hooks, which
    Fabric calls by itself. The suite runs it through a whole run: setup, steps, a
    checkpoint saved and loaded, and the end of the run, normal or failed.
    """

    #: ``True`` for a callback whose job is to change training (clip, schedule, stop):
    #: skips the check that the losses are those of a run without it
    changes_training: bool = False

    def make_callback(self) -> Any:
        """A new instance of the callback."""
        raise NotImplementedError("Return your callback instance from make_callback().")

    def test_fits_the_hook_contract(self) -> None:
        from fabric_core._plugin_manager import FabricPluginManager

        callback = self.make_callback()
        FabricPluginManager().register(callback)  # raises for a misspelled hook or argument
        for hook in hookspecs.SINGLE_OWNER_HOOKS:
            method = getattr(callback, hook, None)
            if method is None:
                continue
            opts = getattr(method, f"{hookspecs.PROJECT_NAME}_impl", None) or {}
            assert opts.get("wrapper") or opts.get("hookwrapper"), (
                f"{type(callback).__name__}.{hook} answers a hook only the strategy may answer; "
                "mark it @hookimpl(wrapper=True) to wrap the strategy instead"
            )

    def test_observes_a_whole_run(self, tmp_path: Path) -> None:
        callback = self.make_callback()
        fabric = Fabric(accelerator="cpu", callbacks=[callback])
        assert callback in fabric.callbacks
        fabric.launch(lambda fabric: train(fabric, tmp_path))

    def test_does_not_change_training(self, tmp_path: Path) -> None:
        if self.changes_training:
            pytest.skip("changes_training = True: this callback changes training on purpose")
        without = train(Fabric(accelerator="cpu"), tmp_path / "without")
        with_callback = train(Fabric(accelerator="cpu", callbacks=[self.make_callback()]), tmp_path / "with")
        assert with_callback == without, f"losses {with_callback} with the callback, {without} without"

    def test_a_failed_run_reaches_the_caller(self) -> None:
        fabric = Fabric(accelerator="cpu", callbacks=[self.make_callback()])
        error = _RunFailed("the run failed on purpose")

        def run(fabric: Fabric) -> None:
            raise error

        with pytest.raises(_RunFailed) as raised:
            fabric.launch(run)
        assert raised.value is error, f"the run's error was replaced by {raised.value!r}"
