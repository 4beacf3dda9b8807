"""JSON Schema of the wire contract, one file per stream union in proto/schema/.

    python -m tradebus.proto.schema --write   # regenerate (refuses a non-additive change)
    python -m tradebus.proto.schema --check   # exit 1 when the checked-in files are stale

A change is additive when every old message still decodes and means the same: no type, field,
enum value or union member removed, no field re-typed or given a new default, no new required
field. ``breaking_changes(old, new)`` lists what is not.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from .account import AccountEvent
from .backtest import BacktestMessage
from .control import ControlMessage
from .market import MarketDataEvent
from .order_events import OrderEvent
from .orders import OrderRequest

__all__ = [
    "UNIONS",
    "SCHEMA_DIR",
    "generate",
    "render",
    "load",
    "breaking_changes",
    "check",
    "write",
    "main",
]

UNIONS: dict[str, tuple[str, Any, str]] = {
    # file stem: (title, union, subjects)
    "market_data": ("MarketDataEvent", MarketDataEvent, "md.>"),
    "order_requests": ("OrderRequest", OrderRequest, "ord.req.>"),
    "order_events": ("OrderEvent", OrderEvent, "ord.evt.>"),
    "account": ("AccountEvent", AccountEvent, "acct.>"),
    "control": ("ControlMessage", ControlMessage, "ctl.>, svc.>"),
    "backtest": ("BacktestMessage", BacktestMessage, "bt.>"),
}

# proto/tradebus/proto/schema.py -> proto/schema
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schema"

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_IGNORED = frozenset({"title", "description", "examples", "$comment", "$schema", "$id"})
_MISSING = object()


def generate() -> dict[str, dict[str, Any]]:
    """Schema dicts of every stream union, keyed by file name."""
    out = {}
    for stem, (title, union, subjects) in UNIONS.items():
        schema = msgspec.json.schema(union)
        for definition in schema.get("$defs", {}).values():
            if "description" in definition:
                definition["description"] = inspect.cleandoc(definition["description"])
        schema["$schema"] = _DRAFT
        schema["title"] = title
        schema["description"] = (
            f"tradebus {title}: msgpack (or JSON) messages on {subjects}, tagged by 'type'."
        )
        out[f"{stem}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """Stable text of a schema: 2-space indent, sorted keys, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """Checked-in schema files, keyed by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}


# --- additivity ---------------------------------------------------------------------------------

def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` is not an additive change of ``old`` (two schema dicts); [] if additive."""
    problems: list[str] = []
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    for name in sorted(old_defs):
        if name not in new_defs:
            problems.append(f"{name}: type removed")
        else:
            _compare(old_defs[name], new_defs[name], name, problems)
    root = lambda s: {k: v for k, v in s.items() if k != "$defs"}  # noqa: E731
    _compare(root(old), root(new), "(root)", problems)
    return problems


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k not in _IGNORED}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def _text(schema: Any) -> str:
    return json.dumps(_strip(schema), sort_keys=True)


def _compare(old: Any, new: Any, path: str, out: list[str]) -> None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        if _strip(old) != _strip(new):
            out.append(f"{path}: changed from {_text(old)} to {_text(new)}")
        return
    keys = (old.keys() | new.keys()) - _IGNORED
    if "properties" in keys or "required" in keys:
        _compare_object(old, new, path, out)
        keys -= {"properties", "required"}
    for key in sorted(keys):
        o, n = old.get(key, _MISSING), new.get(key, _MISSING)
        if o is _MISSING or n is _MISSING:
            if key != "default":  # a default appearing or going is reported via 'required'
                was = "absent" if o is _MISSING else _text(o)
                now = "absent" if n is _MISSING else _text(n)
                out.append(f"{path}: type changed ({key}: {was} -> {now})")
        elif key == "enum":
            removed = [v for v in o if v not in n]
            if removed:
                out.append(f"{path}: enum values removed: {removed}")
        elif key == "anyOf":
            _compare_any_of(o, n, path, out)
        elif key == "discriminator":
            if o.get("propertyName") != n.get("propertyName"):
                out.append(f"{path}: tag field changed")
            for tag, ref in o.get("mapping", {}).items():
                if n.get("mapping", {}).get(tag) != ref:
                    out.append(f"{path}: union member {tag!r} removed or changed")
        elif key == "default":
            if _text(o) != _text(n):  # as JSON: a tuple default is the list it is written as
                out.append(f"{path}: default changed from {_text(o)} to {_text(n)}")
        elif key == "prefixItems" and isinstance(o, list) and isinstance(n, list) and len(o) == len(n):
            for i, (a, b) in enumerate(zip(o, n)):
                _compare(a, b, f"{path}[{i}]", out)
        elif isinstance(o, dict) and isinstance(n, dict):
            _compare(o, n, f"{path}.<{key}>", out)
        elif _strip(o) != _strip(n):
            out.append(f"{path}: type changed ({key}: {_text(o)} -> {_text(n)})")


def _compare_object(old: dict, new: dict, path: str, out: list[str]) -> None:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    for field, schema in old_props.items():
        if field not in new_props:
            out.append(f"{path}.{field}: field removed")
            continue
        _compare(schema, new_props[field], f"{path}.{field}", out)
        if field in new_req and field not in old_req:
            out.append(f"{path}.{field}: field became required")
        if field in old_req and field not in new_req:
            # encoders omit fields at their default, which old decoders would then miss
            out.append(f"{path}.{field}: required field got a default (old decoders need it)")
    for field in sorted(new_props.keys() - old_props.keys()):
        if field in new_req:
            out.append(f"{path}.{field}: new field without a default (now required)")


def _compare_any_of(old: list, new: list, path: str, out: list[str]) -> None:
    old_alts, new_alts = {_text(a): a for a in old}, {_text(a): a for a in new}
    for key in old_alts.keys() - new_alts.keys():
        out.append(f"{path}: type changed (alternative {key} removed)")
    for key, alt in new_alts.items():
        # a new tagged type in a union is additive; widening a scalar field is a re-type
        if key not in old_alts and set(_strip(alt)) != {"$ref"}:
            out.append(f"{path}: type changed (alternative {key} added)")


# --- files -------------------------------------------------------------------------------------

def check(directory: Path = SCHEMA_DIR) -> tuple[list[str], list[str]]:
    """Compare the Structs with the files: (stale-file messages with a diff summary, breaking changes)."""
    directory = Path(directory)
    stale: list[str] = []
    breaking: list[str] = []
    current = generate()
    on_disk = {p.name: p for p in sorted(directory.glob("*.json"))}
    for name, schema in current.items():
        text = render(schema)
        path = on_disk.get(name)
        if path is None:
            stale.append(f"{name}: missing")
            continue
        old_text = path.read_text()
        if old_text != text:
            diff = list(difflib.unified_diff(old_text.splitlines(), text.splitlines(),
                                             f"checked-in/{name}", f"generated/{name}", lineterm="", n=1))
            added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
            removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
            head = "\n".join("    " + d for d in diff[:40])
            more = f"\n    ... {len(diff) - 40} more diff lines" if len(diff) > 40 else ""
            stale.append(f"{name}: differs (+{added} -{removed} lines)\n{head}{more}")
            try:
                old = json.loads(old_text)
            except json.JSONDecodeError as exc:
                breaking.append(f"{name}: checked-in file is not JSON ({exc})")
            else:
                breaking.extend(f"{name}: {p}" for p in breaking_changes(old, schema))
    for name in on_disk.keys() - current.keys():
        stale.append(f"{name}: no longer generated")
        breaking.append(f"{name}: whole union removed")
    return stale, breaking


def write(directory: Path = SCHEMA_DIR, *, allow_breaking: bool = False) -> list[str]:
    """Write the schema files; returns the breaking changes (nothing is written when there are
    some, unless ``allow_breaking``)."""
    directory = Path(directory)
    _, breaking = check(directory)
    if breaking and not allow_breaking:
        return breaking
    directory.mkdir(parents=True, exist_ok=True)
    current = generate()
    for name, schema in current.items():
        path = directory / name
        text = render(schema)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for path in directory.glob("*.json"):
        if path.name not in current:
            path.unlink()
    return breaking


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradebus.proto.schema", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the schema files")
    mode.add_argument("--check", action="store_true", help="exit 1 when the files are out of date")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"schema folder (default {SCHEMA_DIR})")
    parser.add_argument("--allow-breaking", action="store_true",
                        help="write even when the change is not additive")
    args = parser.parse_args(argv)

    if args.write:
        breaking = write(args.dir, allow_breaking=args.allow_breaking)
        if breaking and not args.allow_breaking:
            print("refusing to write a non-additive schema change:", file=sys.stderr)
            for line in breaking:
                print(f"  {line}", file=sys.stderr)
            print("make the change additive (new fields with defaults, or a new type), "
                  "or pass --allow-breaking", file=sys.stderr)
            return 1
        print(f"schema written to {args.dir}")
        return 0

    stale, breaking = check(args.dir)
    if not stale:
        print(f"schema up to date ({len(UNIONS)} files in {args.dir})")
        return 0
    print(f"schema in {args.dir} differs from the Structs; run `python -m tradebus.proto.schema --write`")
    for line in stale:
        print(f"  {line}")
    if breaking:
        print("not additive:")
        for line in breaking:
            print(f"  {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
