"""Shared setup for fabric-deepspeed's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. Each test starts from a clean environment (the kit's
:func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*`` switch or launcher
variable leaking in, and no DeepSpeed config named by ``PL_DEEPSPEED_CONFIG_PATH``).

The processes a test starts get :func:`fabric_core.testing.clean_environment`; scripts run
with the kit's :func:`fabric_core.testing.run_script` (``python script.py`` in the test's
``tmp_path``), and multi-process ones start their second rank with ``fabric.launch()``, over
gloo on the CPU, as users run them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fabric_core.testing import isolated_environment


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PL_DEEPSPEED_CONFIG_PATH", raising=False)
    with isolated_environment(monkeypatch, autoload=True):
        yield
