"""Slurm's compact hostlist syntax: ``node[001-003,007],gpu5`` and friends.

Slurm writes the nodes of a job (``SLURM_NODELIST``, ``SLURM_JOB_NODELIST``) in a
compressed form: a comma-separated list of host expressions, where each expression may
hold bracketed sets of numbers and ranges. This module expands them without calling
``scontrol show hostnames`` (which is not available inside every container).

The grammar accepted here:

* a hostlist is host expressions separated by commas (or whitespace) outside brackets;
* a host expression is literal text with zero or more bracket groups, ``prefix[set]suffix``;
  several groups (``rack[1-2]-node[01-02]``) expand to every combination, the leftmost
  group varying slowest (Slurm's order);
* a set is comma-separated items, each a number (``7``) or an inclusive range (``001-003``);
  numbers keep the zero padding of the range's lower bound (``[08-10]`` gives ``08 09 10``,
  ``[8-10]`` gives ``8 9 10``).

Expansion is lazy, so the first host of a huge allocation costs nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["expand_hostlist", "first_host", "iter_hostlist", "split_hostlist"]


@dataclass(frozen=True)
class _Range:
    low: int
    high: int
    width: int

    def __iter__(self) -> Iterator[str]:
        for number in range(self.low, self.high + 1):
            yield str(number).zfill(self.width)


def split_hostlist(hostlist: str) -> list[str]:
    """Split at the top-level separators: ``"a[1,2],b"`` -> ``["a[1,2]", "b"]``.

    :raises ValueError: on unbalanced or nested brackets.
    """
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for position, char in enumerate(hostlist):
        if char == "[":
            if depth:
                raise ValueError(f"Hostlist {hostlist!r}: nested '[' at position {position}.")
            depth = 1
        elif char == "]":
            if not depth:
                raise ValueError(f"Hostlist {hostlist!r}: ']' without '[' at position {position}.")
            depth = 0
        elif depth == 0 and (char == "," or char.isspace()):
            if current:
                items.append("".join(current))
                current = []
            continue
        current.append(char)
    if depth:
        raise ValueError(f"Hostlist {hostlist!r}: '[' is never closed.")
    if current:
        items.append("".join(current))
    return items


def _parse_set(expression: str, body: str) -> list[_Range]:
    ranges: list[_Range] = []
    for item in body.split(","):
        item = item.strip()
        low_text, dash, high_text = item.partition("-")
        if not low_text.isdigit() or (dash and not high_text.isdigit()):
            raise ValueError(
                f"Hostlist expression {expression!r}: {item!r} inside brackets is not a number or a range "
                "such as 001-004."
            )
        low = int(low_text)
        high = int(high_text) if dash else low
        if high < low:
            raise ValueError(f"Hostlist expression {expression!r}: range {item!r} runs backwards.")
        ranges.append(_Range(low, high, len(low_text)))
    return ranges


def _parse_expression(expression: str) -> list[str | list[_Range]]:
    """Literal text and bracket sets, in order."""
    parts: list[str | list[_Range]] = []
    rest = expression
    while rest:
        start = rest.find("[")
        if start < 0:
            parts.append(rest)
            break
        end = rest.index("]", start)  # split_hostlist guarantees a match
        if start:
            parts.append(rest[:start])
        parts.append(_parse_set(expression, rest[start + 1 : end]))
        rest = rest[end + 1 :]
    return parts


def _expand_parts(parts: list[str | list[_Range]]) -> Iterator[str]:
    if not parts:
        yield ""
        return
    head, tail = parts[0], parts[1:]
    choices: Iterator[str] = iter((head,)) if isinstance(head, str) else itertools.chain.from_iterable(head)
    for choice in choices:
        for rest in _expand_parts(tail):
            yield choice + rest


def iter_hostlist(hostlist: str) -> Iterator[str]:
    """Yield the host names of ``hostlist`` in order, lazily.

    :raises ValueError: on malformed input (raised before the first host is yielded).
    """
    expressions = [_parse_expression(item) for item in split_hostlist(hostlist)]
    for parts in expressions:
        yield from _expand_parts(parts)


def expand_hostlist(hostlist: str) -> list[str]:
    """All host names: ``expand_hostlist("node[001-002],gpu5")`` -> ``["node001", "node002", "gpu5"]``."""
    return list(iter_hostlist(hostlist))


def first_host(hostlist: str) -> str:
    """The first host name of ``hostlist`` (the node of rank 0 under Slurm's block distribution).

    :raises ValueError: when ``hostlist`` is malformed or empty.
    """
    for host in iter_hostlist(hostlist):
        return host
    raise ValueError(f"Hostlist {hostlist!r} names no host.")
