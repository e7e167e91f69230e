"""One release of grace for the sync handle's reads that were properties and are methods now.

``DaskJobHandle.status``, ``.result`` and ``.dashboard_link`` used to be properties that made a
request on each access, so ``job.result()`` -- what users write, as with distributed's and
concurrent.futures' futures -- failed with ``TypeError: 'dict' object is not callable``. They
are methods now. Code written against the properties (``job.status.phase``,
``job.result == {...}``, ``print(job.dashboard_link)``) keeps working for one release: the
attribute is a :class:`MethodOrOldValue`, which does the read when called (no warning) and,
when used as a value instead, does the read once and warns with a ``DeprecationWarning`` that
names the call to write.

It stands in for the value where old code used it: attribute reads, comparisons, indexing,
``in``, iteration, ``len``, truth, hashing, ``str``/``repr``/``format``. It is not the value
itself, so ``isinstance`` and serialisers (``json.dumps``) see the stand-in and fail loudly
rather than quietly; the fix is the same, call it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

__all__ = ["MethodOrOldValue", "formerly_a_property"]

T = TypeVar("T")
_UNREAD = object()


class MethodOrOldValue(Generic[T]):
    """A read bound to one handle: call it to read now; use it as a value (the old property)
    and it reads once, warns once, and behaves as what it read."""

    __slots__ = ("_read", "_what", "_call", "_value")

    def __init__(self, read: Callable[[], T], what: str, call: str) -> None:
        self._read = read
        self._what = what  # e.g. "DaskJobHandle.result"
        self._call = call  # e.g. "job.result()"
        self._value: Any = _UNREAD

    def __call__(self) -> T:
        return self._read()

    def _old_value(self) -> T:
        # stacklevel 3: the user's line, past this method and the dunder that called it
        if self._value is _UNREAD:
            warnings.warn(f"{self._what} is a method now: call {self._call} (using it as a "
                          "value, as the property it was, is deprecated and stops working in "
                          "the next release)", DeprecationWarning, stacklevel=3)
            self._value = self._read()
        return self._value  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy, pickle and friends probing: not an old use
            raise AttributeError(name)
        return getattr(self._old_value(), name)

    def __eq__(self, other: object) -> bool:
        return bool(self._old_value() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self._old_value() != other)

    def __lt__(self, other: Any) -> bool:
        return bool(self._old_value() < other)

    def __le__(self, other: Any) -> bool:
        return bool(self._old_value() <= other)

    def __gt__(self, other: Any) -> bool:
        return bool(self._old_value() > other)

    def __ge__(self, other: Any) -> bool:
        return bool(self._old_value() >= other)

    def __hash__(self) -> int:
        return hash(self._old_value())

    def __bool__(self) -> bool:
        return bool(self._old_value())

    def __len__(self) -> int:
        return len(self._old_value())  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._old_value())  # type: ignore[call-overload]

    def __contains__(self, item: object) -> bool:
        return item in self._old_value()  # type: ignore[operator]

    def __getitem__(self, key: Any) -> Any:
        return self._old_value()[key]  # type: ignore[index]

    def __str__(self) -> str:
        return str(self._old_value())

    def __repr__(self) -> str:
        return repr(self._old_value())

    def __format__(self, spec: str) -> str:
        return format(self._old_value(), spec)


class formerly_a_property(Generic[T]):  # noqa: N801 -- a decorator, named like property
    """Decorates a handle's read method that used to be a property of the same name: on an
    instance the attribute is a :class:`MethodOrOldValue`; on the class, the plain method
    (so ``help()`` and the docs show a method)."""

    def __init__(self, method: Callable[[Any], T]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self._name = method.__name__
        self._owner = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._owner = name, owner.__name__

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[[Any], T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> MethodOrOldValue[T]: ...

    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self._method
        method = self._method
        return MethodOrOldValue(lambda: method(obj), f"{self._owner}.{self._name}",
                                f"job.{self._name}()")
