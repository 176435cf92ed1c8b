"""The cluster-environment suite: under its launcher's variables, every process learns its place, and they agree.

An environment reads what a launcher (a scheduler, ``mpirun``, a Kubernetes operator) sets
in each process it starts. The suite sets those variables for each process of a small run,
as your :meth:`EnvironmentConformance.variables` says the launcher would, and checks what
the environment reports, in this process, with every other launcher variable removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.fabric import Fabric
from fabric_core.testing.environ import RUN_SETTINGS

__all__ = ["EnvironmentConformance", "Place"]


@dataclass(frozen=True)
class Place:
    """Where one process stands in a run."""

    world_size: int
    global_rank: int
    local_rank: int
    node_rank: int


class EnvironmentConformance:
    """For environments whose launcher starts the processes. Implement :meth:`make_environment` and :meth:`variables`.

    .. code-block:: python

        class TestMySchedulerEnvironment(EnvironmentConformance):
            def make_environment(self):
                return MySchedulerEnvironment()

            def variables(self, place):
                return {"MY_RANK": str(place.global_rank), "MY_SIZE": str(place.world_size), ...}
    """

    #: processes the launcher starts on each node (1 for a launcher that starts one per machine or pod)
    processes_per_node: int = 2
    #: whether :meth:`~ClusterEnvironment.detect` recognises the launcher's variables (``False`` for an
    #: environment that must be passed explicitly, like Kubeflow's)
    detectable: bool = True
    #: the name it is registered under, to check that ``Fabric()`` detects it by itself (``None``: skip)
    registered_name: str | None = None

    def make_environment(self) -> ClusterEnvironment:
        """A new instance, made after the variables of the process are set (it may read them at once)."""
        raise NotImplementedError("Return your ClusterEnvironment instance from make_environment().")

    def variables(self, place: Place) -> dict[str, str]:
        """Every variable the launcher sets in the process at ``place`` (main address and port included)."""
        raise NotImplementedError("Return the launcher's variables for `place` from variables(place).")

    def places(self) -> list[Place]:
        """The processes checked: a run of one, and every process of a run on two nodes."""
        per_node = self.processes_per_node
        world = 2 * per_node
        return [Place(1, 0, 0, 0)] + [Place(world, rank, rank % per_node, rank // per_node) for rank in range(world)]

    @pytest.fixture
    def place(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[Place], ClusterEnvironment]:
        """``place(p)``: this process's variables become those of ``p``; returns a new environment."""
        from fabric_core.environments._variables import is_launcher_variable

        def put(place: Place) -> ClusterEnvironment:
            for name in list(os.environ):
                if is_launcher_variable(name) or name in RUN_SETTINGS:
                    monkeypatch.delenv(name)
            for name, value in self.variables(place).items():
                monkeypatch.setenv(name, value)
            return self.make_environment()

        return put

    def test_is_detected_under_its_variables_only(self, place: Callable[[Place], ClusterEnvironment]) -> None:
        for where in self.places():
            environment = place(where)
            assert type(environment).detect() is self.detectable, (
                f"{type(environment).__name__}.detect() is {not self.detectable} under the variables of {where}"
            )
        place(Place(1, 0, 0, 0))
        for name in self.variables(Place(1, 0, 0, 0)):
            os.environ.pop(name, None)
        assert type(environment).detect() is False, f"{type(environment).__name__}.detect() is True with no variables"

    def test_reports_each_process_its_place(self, place: Callable[[Place], ClusterEnvironment]) -> None:
        for where in self.places():
            environment = place(where)
            reported = Place(
                environment.world_size(), environment.global_rank(), environment.local_rank(), environment.node_rank()
            )
            assert reported == where, f"{type(environment).__name__} reports {reported} for the process at {where}"

    def test_every_process_agrees_on_the_main_address_and_port(
        self, place: Callable[[Place], ClusterEnvironment]
    ) -> None:
        answers = {}
        for where in self.places()[1:]:
            environment = place(where)
            address, port = environment.main_address, environment.main_port
            assert isinstance(address, str) and address, f"main_address is {address!r} at {where}"
            assert isinstance(port, int) and 1 <= port <= 65535, f"main_port is {port!r} at {where}"
            answers[where.global_rank] = (address, port)
        assert len(set(answers.values())) == 1, f"the processes disagree on where to meet: {answers}"

    def test_ranks_set_by_fabric_follow_who_starts_the_processes(
        self, place: Callable[[Place], ClusterEnvironment]
    ) -> None:
        where = self.places()[-1]
        environment = place(where)
        assert isinstance(environment.creates_processes_externally, bool)
        environment.set_world_size(where.world_size + 1)
        environment.set_global_rank(0 if where.global_rank else 1)
        if environment.creates_processes_externally:  # the launcher decided; Fabric's requests are ignored
            assert (environment.world_size(), environment.global_rank()) == (where.world_size, where.global_rank)
        else:
            assert (environment.world_size(), environment.global_rank()) == (where.world_size + 1, 0)

    def test_accepts_settings_that_match_the_run(self, place: Callable[[Place], ClusterEnvironment]) -> None:
        where = self.places()[-1]
        place(where).validate_settings(num_devices=self.processes_per_node, num_nodes=2)

    def test_fabric_takes_its_place_from_it(self, place: Callable[[Place], ClusterEnvironment]) -> None:
        environment = place(Place(1, 0, 0, 0))
        fabric = Fabric(accelerator="cpu", devices=1, plugins=[environment])
        assert fabric.strategy.cluster_environment is environment
        assert (fabric.world_size, fabric.global_rank, fabric.local_rank, fabric.node_rank) == (1, 0, 0, 0)
        if self.registered_name is not None and self.detectable:
            detected = Fabric(accelerator="cpu", devices=1).strategy.cluster_environment
            assert type(detected) is type(environment), (
                f"Fabric() detected {type(detected).__name__}, not {self.registered_name!r} "
                f"({type(environment).__name__})"
            )
