"""Plain data, read without running a line of user code: what ``{name}`` in a prompt may show.

Plain data is str, numbers, bool, None, dates, and dict/list/tuple/set/frozenset of those, plus
pandas DataFrames and Series. Steps go through items of plain containers and pandas objects,
and attributes kept in an instance's own ``__dict__``. Everything else (modules, classes,
functions, ``os.environ`` and other mappings that are not plain dicts, properties, any object
shown through its own ``__str__``) is refused with a reason.

Why so strict: prompt text can come from a pasted web page or a notebook nobody checked, and
``{os.environ}`` or ``{cfg}`` would send every token the machine holds. So nothing here calls
``getattr``, ``isinstance``, ``hasattr`` or ``str()`` on an object whose class could run code:
classes are read through ``type``'s own slots (``_mro``, ``_vars``), which a metaclass, a
``__class__`` property or ``__getattribute__`` cannot intercept.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import sys
import types
from dataclasses import dataclass
from typing import Any

_MRO = type.__dict__["__mro__"]
_VARS = type.__dict__["__dict__"]
_NAME = type.__dict__["__name__"]
_FLAGS = type.__dict__["__flags__"]
_HEAPTYPE = 1 << 9
_SCALARS = frozenset({
    str, int, float, complex, bool, type(None), decimal.Decimal, fractions.Fraction,
    datetime.date, datetime.datetime, datetime.time, datetime.timedelta,
})
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_MAX_DEPTH = 20
_BRACKETS: dict[type, tuple[str, str]] = {
    dict: ("{", "}"), list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})"),
}


@dataclass(frozen=True)
class Refused:
    """Why a step stopped: one of ``prompt.REASONS`` and a short fact (a type name, the step)."""

    reason: str
    detail: str = ""


def type_name(cls: type) -> str:
    """A class's name read from its slot (a metaclass cannot answer for it)."""
    return str.__str__(_NAME.__get__(cls)) if type(_NAME.__get__(cls)) is str else "?"


def _mro(cls: type) -> tuple[type, ...]:
    return tuple(_MRO.__get__(cls))


def _class_attr(cls: type, name: str) -> Any:
    """The entry a class (or a base) defines for ``name``, read from the class dicts; or None."""
    for base in _mro(cls):
        found = _VARS.__get__(base)
        if name in found:
            return found[name]
    return None


def _is_data_descriptor(entry: Any) -> bool:
    kind = type(entry)
    return _class_attr(kind, "__set__") is not None or _class_attr(kind, "__delete__") is not None


def _pandas_types() -> tuple[Any, Any, tuple[type, ...]]:
    """(DataFrame, Series, the pandas scalar types) when pandas is loaded, else Nones."""
    pd = sys.modules.get("pandas")
    if type(pd) is not types.ModuleType:
        return None, None, ()
    names = vars(pd)
    frame, series = names.get("DataFrame"), names.get("Series")
    nat, na = names.get("NaT"), names.get("NA")
    scalars = tuple(names[n] for n in ("Timestamp", "Timedelta", "Period") if type(names.get(n)) is type)
    scalars += tuple(type(x) for x in (nat, na) if x is not None)
    return frame, series, scalars


def is_pandas(value: Any) -> bool:
    """A DataFrame or Series itself (not a subclass, whose methods could be anyone's)."""
    frame, series, _ = _pandas_types()
    return frame is not None and type(value) in (frame, series)


def _numpy_scalar(cls: type) -> bool:
    np = sys.modules.get("numpy")
    if type(np) is not types.ModuleType or _FLAGS.__get__(cls) & _HEAPTYPE:
        return False  # a Python subclass of a numpy scalar could override __str__
    generic = vars(np).get("generic")
    return type(generic) is type and generic in _mro(cls) and cls is not vars(np).get("object_")


def is_scalar(value: Any) -> bool:
    """A value whose ``str()`` is the library's own: no user code behind it."""
    cls = type(value)
    return cls in _SCALARS or _numpy_scalar(cls) or cls in _pandas_types()[2]


def attribute(value: Any, name: str) -> Any:
    """``value.name`` when ``name`` is in the instance's own ``__dict__`` (and no property or
    other data descriptor of its class claims it), else a :class:`Refused`."""
    if name.startswith("_"):
        return Refused("private-name", "." + name)
    cls = type(value)
    mro = _mro(cls)
    if type in mro or types.ModuleType in mro or not _FLAGS.__get__(cls) & _HEAPTYPE:
        kind = "class" if type in mro else "module" if types.ModuleType in mro else type_name(cls)
        return Refused("not-plain-data", kind)
    slot = _class_attr(cls, "__dict__")
    try:
        own = slot.__get__(value, cls) if type(slot) is types.GetSetDescriptorType else None
    except TypeError:  # a getset of another type put there as __dict__
        own = None
    if type(own) is not dict:
        return Refused("not-plain-data", type_name(cls))
    entry = _class_attr(cls, name)
    if entry is not None and _is_data_descriptor(entry):
        return Refused("not-plain-data", type_name(type(entry)))
    if name in own:
        return own[name]
    if entry is not None:
        return Refused("not-plain-data", type_name(type(entry)))
    return Refused("no-such-item", "." + name)


def item(value: Any, key: int | str) -> Any:
    """``value[key]`` for a plain dict, list, tuple or str, or a DataFrame/Series (integers are
    positions there); a :class:`Refused` for anything else or a missing key."""
    step = f"[{key!r}]"
    cls = type(value)
    if is_pandas(value):
        try:
            return value.iloc[key] if type(key) is int else value[key]
        except (IndexError, KeyError, TypeError, ValueError):
            return Refused("no-such-item", step)
    if cls not in (dict, list, tuple, str):
        return Refused("not-plain-data", type_name(cls))
    if cls is dict:
        return value[key] if key in value else Refused("no-such-item", step)
    if type(key) is not int or not -len(value) <= key < len(value):
        return Refused("no-such-item", step)
    return value[key]


class _Full(Exception):
    """The text reached its limit: stop rendering."""


def plain_text(value: Any, limit: int) -> tuple[str, bool]:
    """``str(value)`` for plain data, built here so no element's own ``__repr__`` runs, and
    stopped at ``limit`` characters: (text, whether it was cut). A :class:`Refused` is raised
    as ``NotPlain`` for anything that is not plain data."""
    if type(value) is str:
        return (value[:limit], len(value) > limit)
    out: list[str] = []
    size = [0]

    def put(piece: str) -> None:
        out.append(piece)
        size[0] += len(piece)
        if size[0] > limit:
            raise _Full

    try:
        if is_scalar(value):
            put(_scalar(value, as_str=True))
        else:
            _write(value, put, set(), 0)
    except _Full:
        return ("".join(out)[:limit], True)
    return ("".join(out), False)


class NotPlain(Exception):
    """A value (or an element of it) is not plain data; ``args[0]`` is its type's name."""


def _scalar(value: Any, as_str: bool = False) -> str:
    try:
        return str(value) if as_str or type(value) not in (str, float, complex) else repr(value)
    except ValueError:  # an int over the digit limit
        return f"<int with over {sys.get_int_max_str_digits():,} digits>"


def _write(value: Any, put: Any, seen: set[int], depth: int) -> None:
    cls = type(value)
    if is_scalar(value):
        put(repr(value) if cls is str else _scalar(value))
        return
    if cls not in _CONTAINERS:
        raise NotPlain(type_name(cls))
    if id(value) in seen or depth > _MAX_DEPTH:
        put("[...]" if cls is list else "{...}" if cls is dict else "(...)")
        return
    seen.add(id(value))
    if cls in (set, frozenset) and not value:
        put("set()" if cls is set else "frozenset()")
    else:
        opening, closing = _BRACKETS[cls]
        put(opening)
        for i, element in enumerate(value.items() if cls is dict else value):
            if i:
                put(", ")
            if cls is dict:
                _write(element[0], put, seen, depth + 1)
                put(": ")
                element = element[1]
            _write(element, put, seen, depth + 1)
        if cls is tuple and len(value) == 1:
            put(",")
        put(closing)
    seen.discard(id(value))


def cell_text(value: Any, limit: int) -> str:
    """One table cell or label: plain data as text, anything else as ``<TypeName>``."""
    try:
        text, _ = plain_text(value, limit + 1)
    except NotPlain:
        text = f"<{type_name(type(value))}>"
    return text
