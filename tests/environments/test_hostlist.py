"""Slurm's compact hostlist syntax (``SLURM_NODELIST``)."""

from __future__ import annotations

import itertools

import pytest

from fabric_core.environments._hostlist import expand_hostlist, first_host, iter_hostlist, split_hostlist


@pytest.mark.parametrize(
    ("hostlist", "expected"),
    [
        ("node1", ["node1"]),
        ("127.0.0.1", ["127.0.0.1"]),
        ("localhost", ["localhost"]),
        ("a,b,c", ["a", "b", "c"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("node[001-003,007],gpu5", ["node001", "node002", "node003", "node007", "gpu5"]),
        ("node[7,1-2]", ["node7", "node1", "node2"]),  # Slurm's order is kept, not sorted
        ("node[08-10]", ["node08", "node09", "node10"]),  # padding from the lower bound
        ("node[8-10]", ["node8", "node9", "node10"]),
        ("node[098-101]", ["node098", "node099", "node100", "node101"]),
        ("node[5]", ["node5"]),
        ("node[5-5]", ["node5"]),
        ("[1-2]node", ["1node", "2node"]),
        ("node[1-2].cluster.org", ["node1.cluster.org", "node2.cluster.org"]),
        ("rack[1-2]-node[01-02]", ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]),
        ("gpu-a[1,3],gpu-b[2-3],cpu7", ["gpu-a1", "gpu-a3", "gpu-b2", "gpu-b3", "cpu7"]),
        ("node[1, 3]", ["node1", "node3"]),  # spaces inside brackets are tolerated
        ("a b\tc", ["a", "b", "c"]),  # whitespace separates like commas
        ("a,,b,", ["a", "b"]),
        ("", []),
    ],
)
def test_expand(hostlist: str, expected: list[str]) -> None:
    assert expand_hostlist(hostlist) == expected


@pytest.mark.parametrize(
    ("hostlist", "expected"),
    [
        ("node[001-003,007],gpu5", "node001"),
        ("gpu5,node[001-003]", "gpu5"),
        ("node[7,1-2]", "node7"),
        ("rack[3-4]-node[09-10]", "rack3-node09"),
        ("127.0.0.1", "127.0.0.1"),
        (" host-a , host-b", "host-a"),
    ],
)
def test_first_host(hostlist: str, expected: str) -> None:
    assert first_host(hostlist) == expected


def test_expansion_is_lazy() -> None:
    # 10**12 hosts: only a lazy expansion returns the first ones at once.
    hosts = iter_hostlist("n[000000000000-999999999999]")
    assert list(itertools.islice(hosts, 3)) == ["n000000000000", "n000000000001", "n000000000002"]
    assert first_host("n[0-999999999999],m") == "n0"


def test_split_keeps_bracket_commas() -> None:
    assert split_hostlist("a[1,2],b[3-4,6],c") == ["a[1,2]", "b[3-4,6]", "c"]


@pytest.mark.parametrize(
    ("hostlist", "message"),
    [
        ("node[1-3", "never closed"),
        ("node1-3]", "without '['"),
        ("node[1-[2]]", "nested"),
        ("node[]", "not a number"),
        ("node[a-c]", "not a number"),
        ("node[1-]", "not a number"),
        ("node[-3]", "not a number"),
        ("node[1-2-3]", "not a number"),
        ("node[5-3]", "runs backwards"),
    ],
)
def test_malformed(hostlist: str, message: str) -> None:
    with pytest.raises(ValueError, match="Hostlist") as caught:
        expand_hostlist(hostlist)
    assert message in str(caught.value)
    assert repr(hostlist)[1:-1].split("[")[0] in str(caught.value)


def test_malformed_tail_fails_before_the_first_host() -> None:
    # a broken later item is reported at once, not after some hosts were used
    with pytest.raises(ValueError, match="runs backwards"):
        first_host("good1,bad[9-1]")


def test_first_host_of_nothing() -> None:
    with pytest.raises(ValueError, match="names no host"):
        first_host(" , ")
