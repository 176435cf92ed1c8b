"""Fake installed add-ons for the core's tests: the kit's :mod:`fabric_core.testing.distributions`.

Use :class:`FakeSite` through a fixture (or the kit's ``fabric_plugins`` fixture, which also
sets the switches so that the fake add-ons load)::

    @pytest.fixture
    def site(tmp_path, monkeypatch, fresh_discovery):
        with FakeSite(tmp_path / "site", monkeypatch) as fake:
            yield fake
"""

from fabric_core.testing.distributions import COMPATIBLE, EMPTY_PLUGIN, FakeSite, broken_plugin, strategy_plugin

__all__ = ["COMPATIBLE", "EMPTY_PLUGIN", "FakeSite", "broken_plugin", "strategy_plugin"]
