"""The base every config model inherits: strict keys, strict scalar types, documented fields."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

# How `_coercion` judges a value against a type: the value is of that type, pydantic would
# convert it where a config must not (true for a number, 1 for a bool, "8" for a number), or
# neither (pydantic decides: it accepts 2.0 for an int, refuses "x" for a bool, ...).
EXACT, COERCED, OTHER = "exact", "coerced", "other"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def _coercion(annotation: Any, value: Any) -> tuple[str, str]:
    """(EXACT | COERCED | OTHER, what was expected) for `value` given for `annotation`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return EXACT, ""
    if origin is Annotated:
        return _coercion(args[0], value)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_coercion(a, value) for a in args]
        if any(v == EXACT for v, _ in verdicts):
            return EXACT, ""
        expected = [e for v, e in verdicts if v == COERCED]
        return (COERCED, " or ".join(expected)) if expected else (OTHER, "")
    if origin is Literal:
        same = any(type(a) is type(value) and a == value for a in args)
        return (EXACT, "") if same else (OTHER, "")
    if annotation is bool:
        if isinstance(value, bool):
            return EXACT, ""
        return (COERCED, "true or false") if isinstance(value, int | float | str) else (OTHER, "")
    if annotation in (int, float):
        expected = "an integer" if annotation is int else "a number"
        if isinstance(value, bool | str):
            return COERCED, expected
        if isinstance(value, int) or (annotation is float and isinstance(value, float)):
            return EXACT, ""
        return OTHER, ""
    if origin in (list, tuple, set, frozenset) and isinstance(value, list | tuple):
        items = args if origin is tuple and Ellipsis not in args else args[:1] * len(value)
        for i, (item_type, item) in enumerate(zip(items, value, strict=False)):
            verdict, expected = _coercion(item_type, item)
            if verdict == COERCED:
                return COERCED, f"{expected} at item {i}, not {_kind(item)}"
        return EXACT, ""
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        # Keys are not checked: a config dumped as JSON (`dict[int, float]`) has string keys.
        for key, item in value.items():
            verdict, expected = _coercion(args[1], item)
            if verdict == COERCED:
                return COERCED, f"{expected} at key {key!r}, not {_kind(item)}"
        return EXACT, ""
    return OTHER, ""


class StrictModel(BaseModel):
    """Unknown keys are errors; field docstrings become descriptions (CLI help, UI form).

    Scalars are not converted between kinds: `true` for a number, `1` for a bool, or `"8"` for a
    number is an error naming the key (pydantic's lax mode would take them: `max_steps: true`
    trained one step). An int for a float (`lr: 1`) is still a number, and an integral float for
    an int (`2.0`) is left to pydantic. Not `strict=True`: that would also refuse a YAML list for a
    tuple and JSON's string keys for `dict[int, ...]`.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_scalar_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        verdict, expected = _coercion(field.annotation, value)
        if verdict == COERCED:
            if " not " in expected:  # an item of a list or dict: the message says which
                raise ValueError(f"expected {expected}")
            raise ValueError(f"expected {expected}, not {_kind(value)}")
        return value


def config_hash(section: BaseModel) -> str:
    """Stable hash of a config section; part of each stage's manifest and cache key."""
    blob = json.dumps(section.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
