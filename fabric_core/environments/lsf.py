"""Processes started by IBM Spectrum LSF's ``jsrun`` (Summit, Sierra, Lassen, ...).

Behaviour follows Lightning Fabric's ``LSFEnvironment``:

* detected when ``LSB_JOBID``, a host list (``LSB_DJOB_RANKFILE`` or ``LSB_HOSTS``) and
  jsrun's ``JSM_NAMESPACE_SIZE`` / ``JSM_NAMESPACE_RANK`` / ``JSM_NAMESPACE_LOCAL_RANK`` are set;
* ranks and world size from the ``JSM_NAMESPACE_*`` variables;
* the host list is the rank file (one line per slot) or, without one, ``LSB_HOSTS`` (one
  word per slot). Its first entry is the launch ("batch") node, which runs no task, and is
  dropped; the main address is the first host after it, and the node rank is the position of
  this machine's host name among the distinct hosts that follow;
* the main port is ``MASTER_PORT`` when set, else ``10000 + LSB_JOBID % 1000``.

As in Lightning, the host list, the port and this machine's node rank are worked out when
the environment is created, so a job that lacks them fails at once, with an error (a
``ValueError``, Lightning's type, and a ``RuntimeError``) naming the variable and its value.
"""

from __future__ import annotations

import os
import socket

from fabric_core.environments._variables import EnvironmentVariableError, check_rank, read_int, read_port
from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment

__all__ = ["LSFEnvironment"]

_OWNER = "LSFEnvironment"
_HINT = "jsrun sets it for every task it starts: run the script as `jsrun ... python script.py`."
#: ``main_port`` is this plus ``LSB_JOBID % 1000``.
PORT_OFFSET = 10000


def _short(host: str) -> str:
    return host.split(".", 1)[0]


class LSFEnvironment(ExternallyLaunchedEnvironment):
    """Ranks from jsrun's ``JSM_NAMESPACE_*`` variables, hosts from LSF's rank file."""

    launcher_name = "jsrun"

    def __init__(self) -> None:
        for name in ("JSM_NAMESPACE_RANK", "JSM_NAMESPACE_LOCAL_RANK"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT)
        for name in ("JSM_NAMESPACE_SIZE", "JSM_NAMESPACE_LOCAL_SIZE"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT, minimum=1)
        check_rank("JSM_NAMESPACE_RANK", "JSM_NAMESPACE_SIZE", owner=_OWNER, hint=_HINT)
        check_rank("JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_LOCAL_SIZE", owner=_OWNER, hint=_HINT)
        _ = self.main_port
        self.node_rank()  # reads the host list and finds this machine in it

    @property
    def main_address(self) -> str:
        """The first compute host of the job (the host after the launch node)."""
        return self.hosts()[0]

    @property
    def main_port(self) -> int:
        """``MASTER_PORT``, else ``10000 + LSB_JOBID % 1000`` (the same on every task)."""
        if os.environ.get("MASTER_PORT", "").strip():
            return read_port("MASTER_PORT", owner=_OWNER)
        job_id = read_int("LSB_JOBID", owner=_OWNER, hint="LSF sets it inside a job; or set MASTER_PORT.")
        return PORT_OFFSET + job_id % 1000

    @classmethod
    def detect(cls) -> bool:
        """An LSF job (``LSB_JOBID`` and a host list) whose processes jsrun started."""
        has_hosts = bool(os.environ.get("LSB_DJOB_RANKFILE") or os.environ.get("LSB_HOSTS"))
        jsrun = ("JSM_NAMESPACE_SIZE", "JSM_NAMESPACE_RANK", "JSM_NAMESPACE_LOCAL_RANK")
        return "LSB_JOBID" in os.environ and has_hosts and all(name in os.environ for name in jsrun)

    def world_size(self) -> int:
        return read_int("JSM_NAMESPACE_SIZE", owner=_OWNER, hint=_HINT, minimum=1)

    def global_rank(self) -> int:
        return read_int("JSM_NAMESPACE_RANK", owner=_OWNER, hint=_HINT)

    def local_rank(self) -> int:
        return read_int("JSM_NAMESPACE_LOCAL_RANK", owner=_OWNER, hint=_HINT)

    def node_rank(self) -> int:
        """The position of this machine among the job's distinct compute hosts."""
        distinct = list(dict.fromkeys(self.hosts()))
        return distinct.index(self._this_host(distinct))

    def local_world_size(self) -> int:
        """``JSM_NAMESPACE_LOCAL_SIZE``, else the number of slots of this host in the host list."""
        if os.environ.get("JSM_NAMESPACE_LOCAL_SIZE"):
            return read_int("JSM_NAMESPACE_LOCAL_SIZE", owner=_OWNER, hint=_HINT)
        hosts = self.hosts()
        return hosts.count(self._this_host(list(dict.fromkeys(hosts))))

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """``devices * num_nodes`` must equal ``JSM_NAMESPACE_SIZE``."""
        world_size = self.world_size()
        if num_devices * num_nodes != world_size:
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) asks for {num_devices * num_nodes} processes, "
                f"but jsrun started JSM_NAMESPACE_SIZE={world_size}. Start one task per device (for example "
                f"`jsrun --nrs {num_nodes * num_devices} --tasks_per_rs 1 --gpu_per_rs 1 ...`), or change devices "
                f"and num_nodes so that devices * num_nodes = {world_size}."
            )

    # -- LSF specifics ------------------------------------------------------------------------

    @staticmethod
    def hosts() -> list[str]:
        """The job's compute hosts, one entry per slot, without the launch node.

        :raises EnvironmentVariableError: when neither ``LSB_DJOB_RANKFILE`` nor ``LSB_HOSTS`` gives a host.
        """
        rankfile = os.environ.get("LSB_DJOB_RANKFILE")
        if rankfile:
            try:
                with open(rankfile, encoding="utf-8") as handle:
                    entries = [line.strip() for line in handle if line.strip()]
            except OSError as err:
                raise EnvironmentVariableError(
                    f"LSFEnvironment cannot read the rank file LSB_DJOB_RANKFILE={rankfile!r}: {err}"
                ) from err
            source = f"LSB_DJOB_RANKFILE={rankfile!r}"
        else:
            entries = os.environ.get("LSB_HOSTS", "").split()
            source = "LSB_HOSTS"
        if not entries:
            raise EnvironmentVariableError(
                f"LSFEnvironment found no host in {source}. Run inside an LSF job (bsub) whose tasks jsrun started."
            )
        # The first entry is the launch node; a one-entry list has nothing else to offer.
        return entries[1:] if len(entries) > 1 else entries

    @staticmethod
    def _this_host(distinct: list[str]) -> str:
        hostname = socket.gethostname()
        if hostname in distinct:
            return hostname
        for host in distinct:
            if _short(host) == _short(hostname):
                return host
        raise EnvironmentVariableError(
            f"LSFEnvironment: this machine ({hostname!r}) is not among the job's hosts {distinct}; the node rank "
            "cannot be determined. Check LSB_DJOB_RANKFILE / LSB_HOSTS."
        )
