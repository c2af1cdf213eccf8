"""`Plain`: the base of the classes `apply` imports before its first request, written out, not dataclasses.

`@dataclass` compiles `__init__`, `__repr__` and `__eq__` (five methods when frozen) from source every time its
module is imported: 0.4-2.9 ms per class measured, ~25 ms of apply's start-up for the twenty classes it imported
(BENCHMARKS.md). A written-out `__init__` is compiled once, into the module's bytecode. `Plain` adds a
`__repr__` made from `__slots__`; `Compared` adds `==` over them.
"""

from __future__ import annotations

from collections.abc import Iterable


class Plain:
    """`repr` shows every slot but those named in `_hidden` (a secret, a cached computation)."""

    __slots__ = ()
    _hidden: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        names: Iterable[str] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names if name not in self._hidden)
        return f"{type(self).__name__}({fields})"


class Compared(Plain):
    """A `Plain` class whose instances are equal when their slots are (as a dataclass's), `_hidden` ones left
    out; not hashable."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names: Iterable[str] = self.__slots__
        hidden = self._hidden
        return all(_same(getattr(self, name), getattr(other, name)) for name in names if name not in hidden)

    __hash__ = None  # type: ignore[assignment]


def _same(left: object, right: object) -> bool:
    return left is right or left == right  # as a tuple compares its items
