"""``LightningEnum``: a string enum that compares equal to its value, in any case."""

from __future__ import annotations

from enum import Enum

__all__ = ["LightningEnum"]


class LightningEnum(str, Enum):
    """An enum whose members are strings: ``Member == "value"`` and ``Member == "VALUE"`` are true."""

    @classmethod
    def from_str(cls, value: str, source: str = "key") -> LightningEnum:
        """The member whose name (``source="key"``), value (``"value"``) or either (``"any"``)
        matches ``value``, ignoring case.

        :raises ValueError: when none matches, listing the choices.
        """
        for member in cls:
            by_key = source in ("key", "any") and member.name.lower() == value.lower()
            by_value = source in ("value", "any") and str(member.value).lower() == value.lower()
            if by_key or by_value:
                return member
        raise ValueError(f"{value!r} is not a {cls.__name__}; expected one of {[m.value for m in cls]}.")

    def __eq__(self, other: object) -> bool:
        other = other.value if isinstance(other, Enum) else other
        return str(self.value).lower() == str(other).lower()

    def __hash__(self) -> int:
        # Equal members must hash alike: hash the lower-cased value, as __eq__ compares it.
        return hash(str(self.value).lower())
