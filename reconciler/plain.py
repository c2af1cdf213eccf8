"""`Plain`: the base of the classes `apply` imports before its first request, written out, not dataclasses.

`@dataclass` compiles `__init__`, `__repr__` and `__eq__` (five methods when frozen) from source every time its
module is imported: 0.4-2.9 ms per class measured, ~25 ms of apply's start-up for the twenty classes it imported
(BENCHMARKS.md). A written-out `__init__` is compiled once, into the module's bytecode. `Plain` adds a
`__repr__` made from `__slots__`; a class that is compared or hashed says so itself.
"""

from __future__ import annotations

from collections.abc import Iterable


class Plain:
    __slots__ = ()

    def __repr__(self) -> str:
        names: Iterable[str] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"
