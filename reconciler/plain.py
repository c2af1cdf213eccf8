"""`Plain`: the base of the classes `apply` imports before its first request, written out, not dataclasses.

`@dataclass` compiles `__init__`, `__repr__` and `__eq__` (five methods when frozen) from source every time its
module is imported: 0.4-2.9 ms per class measured, ~25 ms of apply's start-up for the twenty classes it imported
(BENCHMARKS.md). A written-out `__init__` is compiled once, into the module's bytecode. `Plain` adds a
`__repr__` made from `__slots__`; `Compared` adds `==` over them.
"""

from __future__ import annotations

from collections.abc import Iterable


class Plain:
    __slots__ = ()

    def __repr__(self) -> str:
        names: Iterable[str] = self.__slots__
        hidden: frozenset[str] = getattr(self, "_uncompared", frozenset())
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names if name not in hidden)
        return f"{type(self).__name__}({fields})"


class Compared(Plain):
    """A `Plain` class whose instances are equal when their slots are (as a dataclass's); not hashable.

    `_uncompared` names slots left out of `==` and `repr` (a cached computation, say)."""

    __slots__ = ()
    _uncompared: frozenset[str] = frozenset()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names: Iterable[str] = self.__slots__
        return all(
            _same(getattr(self, name), getattr(other, name)) for name in names if name not in self._uncompared
        )

    __hash__ = None  # type: ignore[assignment]


def _same(left: object, right: object) -> bool:
    return left is right or left == right  # as a tuple compares its items
