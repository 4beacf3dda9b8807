"""The checked-in JSON Schema matches the Structs, and schema changes stay additive."""
from __future__ import annotations

import copy
import enum
import json

import msgspec
import pytest

from tradebus.proto import schema

from .samples import concrete_types


def test_checked_in_schema_matches_the_structs():
    stale, breaking = schema.check()
    assert not stale, (
        "proto/schema is out of date; run `python -m tradebus.proto.schema --write`\n" + "\n".join(stale)
    )
    assert not breaking


def test_structs_are_an_additive_change_of_the_checked_in_schema():
    checked_in = schema.load()
    for name, current in schema.generate().items():
        assert name in checked_in, f"{name} is not checked in"
        assert schema.breaking_changes(checked_in[name], current) == [], name


def test_every_type_is_in_the_schema():
    defined = set()
    for doc in schema.generate().values():
        defined |= doc["$defs"].keys()
    assert {cls.__name__ for cls in concrete_types()} <= defined


def test_files_are_stable_text():
    text = (schema.SCHEMA_DIR / "order_requests.json").read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "$defs"')
    doc = json.loads(text)
    assert doc["title"] == "OrderRequest" and doc["$schema"].startswith("https://json-schema.org/")
    assert schema.render(doc) == text


# --- breaking_changes on synthetic schemas: each rule can fail -------------------------------------

class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class ColorLess(enum.StrEnum):
    RED = "red"


class Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    pass


def _schema(*types):
    return msgspec.json.schema(types[0] if len(types) == 1 else types[0] | types[1])


def _old():
    class Thing(Base, tag="x.thing", kw_only=True):
        """Old docstring."""
        name: str
        qty: float
        color: Color = Color.RED
        note: str | None = None
        tags: list[str] = []

    class Other(Base, tag="x.other", kw_only=True):
        n: int

    return Thing, Other


OLD = _schema(*_old())


def _new(**changes):
    """A variant of the old Thing with its body given as annotations/defaults."""
    annotations = {"name": str, "qty": float, "color": Color, "note": str | None, "tags": list[str]}
    defaults = {"color": Color.RED, "note": None, "tags": []}
    annotations.update(changes.pop("annotations", {}))
    defaults.update(changes.pop("defaults", {}))
    for name in changes.pop("remove", ()):
        annotations.pop(name)
        defaults.pop(name, None)
    for name in changes.pop("no_default", ()):
        defaults.pop(name)
    ns = {"__annotations__": annotations, "__doc__": changes.pop("doc", "Old docstring."), **defaults}
    thing = type("Thing", (Base,), ns, tag="x.thing", kw_only=True)
    other = _old()[1]
    return _schema(thing, other) if changes.pop("keep_other", True) else _schema(thing)


def test_identical_and_cosmetic_changes_are_additive():
    assert schema.breaking_changes(OLD, OLD) == []
    assert schema.breaking_changes(OLD, _new(doc="A better docstring.")) == []


@pytest.mark.parametrize("change", [
    {"annotations": {"size": int}, "defaults": {"size": 0}},          # new field with a default
    {"annotations": {"extra": dict[str, float]}, "defaults": {"extra": {}}},
])
def test_new_optional_fields_are_additive(change):
    assert schema.breaking_changes(OLD, _new(**change)) == []


def test_new_enum_value_and_new_union_member_are_additive():
    new = copy.deepcopy(OLD)
    new["$defs"]["Color"]["enum"].append("green")
    assert schema.breaking_changes(OLD, new) == []

    class Third(Base, tag="x.third", kw_only=True):
        z: int

    thing, other = _old()
    assert schema.breaking_changes(OLD, msgspec.json.schema(thing | other | Third)) == []


@pytest.mark.parametrize("change, expected", [
    ({"remove": ["qty"]}, "Thing.qty: field removed"),
    ({"annotations": {"qty": int}}, "Thing.qty: type changed"),
    ({"annotations": {"qty": str}}, "Thing.qty: type changed"),
    ({"annotations": {"note": str | int | None}}, "Thing.note: type changed"),
    ({"annotations": {"qty": float | None}, "defaults": {"qty": None}}, "Thing.qty: type changed"),
    ({"annotations": {"tags": list[int]}}, "Thing.tags.<items>: type changed"),
    ({"annotations": {"size": int}}, "Thing.size: new field without a default (now required)"),
    ({"no_default": ["note"]}, "Thing.note: field became required"),
    ({"defaults": {"color": Color.BLUE}}, "Thing.color: default changed"),
    ({"annotations": {"name": str}, "defaults": {"name": ""}}, "Thing.name: required field got a default"),
    ({"annotations": {"color": ColorLess}, "defaults": {"color": ColorLess.RED}}, "Thing.color: type changed"),
    ({"keep_other": False}, "Other: type removed"),
])
def test_breaking_changes_are_reported(change, expected):
    problems = schema.breaking_changes(OLD, _new(**change))
    assert any(p.startswith(expected) for p in problems), problems


def test_removed_enum_value_and_union_member_are_reported():
    new = copy.deepcopy(OLD)
    new["$defs"]["Color"]["enum"].remove("blue")
    assert schema.breaking_changes(OLD, new) == ["Color: enum values removed: ['blue']"]

    new = copy.deepcopy(OLD)
    new["anyOf"] = new["anyOf"][:1]
    del new["discriminator"]["mapping"]["x.other"]
    problems = schema.breaking_changes(OLD, new)
    assert any("union member 'x.other' removed" in p for p in problems), problems
    assert any("alternative" in p and "removed" in p for p in problems), problems


def test_changed_tag_is_reported():
    new = copy.deepcopy(OLD)
    new["$defs"]["Thing"]["properties"]["type"]["enum"] = ["x.thing2"]
    assert any("Thing.type: enum values removed" in p for p in schema.breaking_changes(OLD, new))


def test_a_breaking_edit_of_the_real_schema_is_caught():
    current = schema.generate()["market_data.json"]
    edited = copy.deepcopy(current)
    del edited["$defs"]["Trade"]["properties"]["trade_id"]
    assert schema.breaking_changes(current, edited) == ["Trade.trade_id: field removed"]
    edited = copy.deepcopy(current)
    edited["$defs"]["BBO"]["properties"]["bid_qty"] = {"type": "string"}
    assert schema.breaking_changes(current, edited) == ['BBO.bid_qty: type changed (type: "number" -> "string")']


# --- the command line ---------------------------------------------------------------------------

def test_cli_write_then_check(tmp_path, capsys):
    assert schema.main(["--write", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schema.generate())
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_cli_check_reports_a_cosmetic_difference_without_breaking(tmp_path, capsys):
    schema.write(tmp_path)
    path = tmp_path / "account.json"
    doc = json.loads(path.read_text())
    doc["$defs"]["Balance"]["description"] = "stale text"
    path.write_text(schema.render(doc))
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "account.json: differs (+1 -1 lines)" in out and "not additive" not in out
    assert schema.main(["--write", "--dir", str(tmp_path)]) == 0
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 0


def test_cli_refuses_to_write_a_breaking_change(tmp_path, capsys):
    schema.write(tmp_path)
    path = tmp_path / "order_events.json"
    doc = json.loads(path.read_text())
    # pretend the checked-in Fill had a field the Structs no longer have
    doc["$defs"]["Fill"]["properties"]["venue_fee_tier"] = {"type": "integer"}
    path.write_text(schema.render(doc))
    before = path.read_text()

    assert schema.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "Fill.venue_fee_tier: field removed" in capsys.readouterr().out
    assert schema.main(["--write", "--dir", str(tmp_path)]) == 1
    assert "refusing" in capsys.readouterr().err
    assert path.read_text() == before
    assert schema.main(["--write", "--allow-breaking", "--dir", str(tmp_path)]) == 0
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 0


def test_cli_reports_missing_and_extra_files(tmp_path, capsys):
    schema.write(tmp_path)
    (tmp_path / "control.json").unlink()
    (tmp_path / "retired.json").write_text("{}\n")
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "control.json: missing" in out and "retired.json: no longer generated" in out
    assert "retired.json: whole union removed" in out
