"""``{name}`` reads plain data only, and never runs a line of user code to find out.

Every object below raises if any of its code runs (a ``__class__`` property, ``__getattribute__``,
a metaclass, ``__str__``/``__repr__``, ``__eq__``/``__hash__``, ``__bool__``); the expansion must
leave such references as typed and say why (``Expansion.left``).
"""

from __future__ import annotations

import datetime
import os
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from aiml_magics.prompt import LeftAsTyped, Limits, expand
from tests.conftest import TEST_KEY

RAN: list[str] = []


class Tripwire:
    """Any code of this object that runs is recorded (and would have been a leak)."""

    def __init__(self) -> None:
        object.__setattr__(self, "plain", "ok")

    @property
    def __class__(self):  # type: ignore[override]
        RAN.append("__class__")
        return dict

    def __getattribute__(self, name):
        RAN.append(f"__getattribute__({name})")
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        RAN.append(f"__getattr__({name})")
        return "x"

    def __str__(self) -> str:
        RAN.append("__str__")
        return "str ran"

    __repr__ = __str__
    __format__ = lambda self, spec: (RAN.append("__format__"), "f")[1]  # noqa: E731

    def __eq__(self, other):
        RAN.append("__eq__")
        return True

    def __hash__(self) -> int:
        RAN.append("__hash__")
        return 1

    def __bool__(self) -> bool:
        RAN.append("__bool__")
        return True

    def __len__(self) -> int:
        RAN.append("__len__")
        return 1

    def __getitem__(self, key):
        RAN.append("__getitem__")
        return "item"


class Meta(type):
    def __getattribute__(cls, name):
        RAN.append(f"meta.__getattribute__({name})")
        return type.__getattribute__(cls, name)

    @property
    def __mro__(cls):  # type: ignore[override]
        RAN.append("meta.__mro__")
        return (dict, object)


class Sneaky(metaclass=Meta):
    def __init__(self) -> None:
        self.token = "fine"

    @property
    def token2(self) -> str:
        RAN.append("property")
        return "p"


class Shadowed:
    """An instance value shadowed by a data descriptor: Python would run the property."""

    def __init__(self) -> None:
        self.__dict__["name"] = "from dict"

    @property
    def name(self) -> str:
        RAN.append("shadow property")
        return "prop"


class Config:
    def __init__(self) -> None:
        self.key = TEST_KEY
        self.model = "gpt-4o"
        self.nested = {"rows": [1, 2, {"k": "v"}]}


class StrChild(str):
    def __str__(self) -> str:
        RAN.append("str subclass __str__")
        return "leak"


@pytest.fixture(autouse=True)
def _clean():
    RAN.clear()
    yield
    assert RAN == [], f"user code ran: {RAN}"


def left(text: str, ns: dict) -> list[LeftAsTyped]:
    out = expand(text, ns)
    assert out.text == text, "a refused reference must stay exactly as typed"
    return out.left


@pytest.mark.parametrize("ref, reason, detail", [
    ("os", "not-plain-data", "module"),
    ("os.environ", "not-plain-data", "module"),
    ("environ", "not-plain-data", "_Environ"),
    ("environ['HOME']", "not-plain-data", "_Environ"),
    ("sys.modules", "not-plain-data", "module"),
    ("Config", "not-plain-data", "type"),
    ("Config.__init__", "private-name", ".__init__"),
    ("cfg", "not-plain-data", "Config"),
    ("cfg._x", "private-name", "._x"),
    ("cfg.missing", "no-such-item", ".missing"),
    ("trip", "not-plain-data", "Tripwire"),
    ("trip['k']", "not-plain-data", "Tripwire"),
    ("sneaky.token2", "not-plain-data", "property"),
    ("shadow.name", "not-plain-data", "property"),
    ("child", "not-plain-data", "StrChild"),
    ("fn", "not-plain-data", "function"),
    ("fn.attr", "not-plain-data", "function"),
    ("d['nope']", "no-such-item", "['nope']"),
    ("xs[9]", "no-such-item", "[9]"),
    ("nothing", "no-such-name", ""),
    ("_hidden", "private-name", ""),
    ("objs", "not-plain-data", "Tripwire"),
    ("dd", "not-plain-data", "defaultdict"),
])
def test_what_is_not_plain_data_stays_as_typed_with_a_reason(ref, reason, detail):
    import collections

    def fn():
        RAN.append("fn")

    fn.attr = "x"
    ns = {"os": os, "environ": os.environ, "sys": sys, "Config": Config, "cfg": Config(),
          "trip": Tripwire(), "sneaky": Sneaky(), "shadow": Shadowed(), "child": StrChild("c"),
          "fn": fn, "d": {"k": 1}, "xs": [1], "_hidden": "h", "objs": [1, Tripwire()],
          "dd": collections.defaultdict(list)}
    assert left("{" + ref + "}", ns) == [LeftAsTyped(ref, reason, detail)]


def test_the_class_trick_of_the_report_runs_nothing():
    """``inspect.getattr_static`` called ``isinstance``, which read a ``__class__`` property; the
    instance's own data is still readable, from its ``__dict__``, without running its code."""
    out = expand("{trip.plain} {trip}", {"trip": Tripwire()})
    assert out.text == "ok {trip}" and out.left == [LeftAsTyped("trip", "not-plain-data", "Tripwire")]


def test_instance_attributes_and_plain_values_expand():
    ns = {"cfg": Config(), "sneaky": Sneaky(), "when": datetime.date(2024, 5, 1), "n": np.int64(3),
          "f": np.float32(1.5), "dec": Decimal("1.10"), "t": (1,), "s": {2}, "fs": frozenset(),
          "none": None, "flag": True}
    text = "{cfg.model} {cfg.nested} {sneaky.token} {when} {n} {f} {dec} {t} {s} {fs} {none} {flag}"
    out = expand(text, ns)
    assert out.text == (
        "gpt-4o {'rows': [1, 2, {'k': 'v'}]} fine 2024-05-01 3 1.5 1.10 (1,) {2} frozenset() None True"
    )
    assert out.left == [] and out.masked == []


def test_a_value_holding_the_key_is_masked_before_it_is_sent_shown_or_kept():
    from aiml_magics.errors import register_secret

    register_secret(TEST_KEY)
    out = expand("use {cfg.key} and {settings}", {"cfg": Config(), "settings": {"api_key": TEST_KEY}})
    assert TEST_KEY[:-4] not in out.text and "****" in out.text
    assert out.masked == ["cfg.key", "settings"]


def test_recursive_and_huge_plain_values_are_bounded():
    loop: list = [1]
    loop.append(loop)
    assert expand("{loop}", {"loop": loop}).text == "[1, [...]]"
    big = list(range(10**6))
    out = expand("{big}", {"big": big}, Limits(max_chars=50))
    assert out.text.startswith("[0, 1, 2, 3") and len(out.text) < 120
    assert out.truncated[0].note == "50 characters, more left out"
    huge = 10**5000
    assert "digits" in expand("{huge}", {"huge": huge}).text


def test_dataframe_cells_holding_objects_show_only_their_type():
    df = pd.DataFrame({"a": [Tripwire(), 1], "b": [pd.Timestamp("2024-01-02"), pd.NaT]})
    RAN.clear()  # pandas itself looked at the object while building the frame
    out = expand("{df}", {"df": df})
    assert "<Tripwire>" in out.text and "2024-01-02" in out.text and "NaT" in out.text
    frame = pd.DataFrame({"v": range(200), **{f"c{i}": 1 for i in range(3)}})
    got = expand("{reviews}", {"reviews": frame}, Limits(max_rows=20))
    assert got.truncated[0].note == "20 of 200 rows, 4 of 4 columns"


def test_expansion_off_lists_what_would_have_been_looked_up():
    out = expand("{city} and {nobody} {{city}}", {"city": "Paris"}, enabled=False)
    assert out.text == "{city} and {nobody} {{city}}"
    assert out.left == [LeftAsTyped("city", "expansion-off")] and out.names == []


def test_each_reference_is_reported_once_in_order():
    out = expand("{a} {b} {a} {c} {b}", {"a": 1, "b": os})
    assert out.names == ["a"] and [x.ref for x in out.left] == ["b", "c"]
