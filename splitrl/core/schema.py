"""Config sections as pydantic models: one declaration per key (type, default, range, unit, meaning).

A section is a :class:`Section` subclass whose fields are declared with :func:`key`::

    class StopSection(Section):
        iterations: PositiveInt | None = key(50, "training iterations")
        time_s: PositiveFloat | None = key(None, "wall-clock budget", unit="s")

:func:`validate_section` turns the first pydantic error into the platform's one-line
:class:`~splitrl.core.errors.ConfigError` (``section.key: what is wrong; what is allowed``) and
:func:`explain_section` lists the keys for ``splitrl config --explain``.  Validation is strict
(no bool for a number, no float for an integer) except that a string that reads as a number is
taken for a float: PyYAML reads ``1.5e6`` (no exponent sign) as a string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from splitrl.core.errors import ConfigError


def _yaml_float(value: Any) -> Any:
    """A string that reads as a number becomes that float (PyYAML reads 1.5e6 as a string); a
    numpy number its Python value."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and not isinstance(value, bool):
        return value.item()
    return value


def _yaml_int(value: Any) -> Any:
    """A float or numeric string with an integral value (``3.0``, ``"1e5"``), or a numpy integer,
    becomes that int; anything else is left for the strict check to reject."""
    value = _yaml_float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite", "expected a finite number, got {value}", {"value": repr(value)})
    return value


#: A finite float that also accepts an integer and a numeric string.
Float = Annotated[float, BeforeValidator(_finite), BeforeValidator(_yaml_float)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Int = Annotated[int, BeforeValidator(_yaml_int)]
PositiveInt = Annotated[Int, Field(ge=1)]
NonNegativeInt = Annotated[Int, Field(ge=0)]


def _schedule(value: Any) -> Any:
    """A coefficient, or a piecewise-linear schedule over sampled env steps (RLlib's format):
    ``[[0, v0], [env_step, v1], ...]``, steps integers from 0, strictly increasing, values >= 0."""
    value = _yaml_float(value)
    if not isinstance(value, list):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PydanticCustomError(
                "schedule",
                "expected float or a schedule [[0, v0], [env_step, v1], ...], got {value}",
                {"value": repr(value)},
            )
        if not math.isfinite(value) or value < 0:
            raise PydanticCustomError("schedule", "must be >= 0, got {value}", {"value": repr(value)})
        return float(value)
    want = "a schedule [[0, v0], [env_step, v1], ...] (integer env steps from 0, increasing; values >= 0)"

    def bad(why: str):
        return PydanticCustomError("schedule", "expected {want}; {why}", {"want": want, "why": why})

    if len(value) < 2:
        raise PydanticCustomError(
            "schedule", "expected {want}: at least two points, got {value}", {"want": want, "value": repr(value)}
        )
    out: list[list] = []
    for i, pair in enumerate(value):
        if isinstance(pair, list):
            pair = [_yaml_float(x) for x in pair]
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in pair)
            or not float(pair[0]).is_integer()
        ):  # 1.5e6 (a YAML float) is an integer step too
            raise bad(f"point {i} is {pair!r}")
        step, v = int(pair[0]), float(pair[1])
        if i == 0 and step != 0:
            raise bad(f"the first point's env step is {step}, not 0")
        if out and step <= out[-1][0]:
            raise bad(f"env step {step} of point {i} is not after {out[-1][0]}")
        if not math.isfinite(v) or v < 0:
            raise bad(f"point {i} has value {pair[1]!r}")
        out.append([step, v])
    return out


#: A coefficient >= 0 or a schedule of it over sampled env steps.
Schedulable = Annotated[NonNegativeFloat | list[list[float]], BeforeValidator(_schedule)]


#: The unit a key's name ends in (``docs/units.md``), longest suffix first.
SUFFIX_UNITS = (
    ("_dbm_per_hz", "dBm/Hz"),
    ("_per_s", "1/s"),
    ("_bytes", "B"),
    ("_bits", "bit"),
    ("_bps", "bit/s"),
    ("_dbm", "dBm"),
    ("_db", "dB"),
    ("_hz", "Hz"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_w", "W"),
    ("_j", "J"),
    ("_m", "m"),
)


def unit_of(name: str) -> str:
    """The unit a key's suffix declares (``f_edge_max_hz`` -> ``Hz``), ``""`` without one."""
    for suffix, unit in SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def key(default: Any, doc: str, *, unit: str = "", type: str = "", **constraints: Any) -> Any:
    """A config key: its default, a one-line meaning and its unit (``""``: none); ``type`` names
    the type for ``--explain`` where the annotation does not say it well."""
    return Field(default, description=doc, json_schema_extra={"unit": unit, "type": type}, **constraints)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are strictly typed."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=False)


def _describe(err: dict, model: type[Section]) -> tuple[str, str]:
    """``(dotted location inside the section, message)`` for one pydantic error."""
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "union["))]
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    name = loc[0] if loc else ""
    if kind == "extra_forbidden":
        return name, f"unknown key; allowed: {', '.join(fields)}"
    got = f", got {value!r}"
    messages = {
        "int_type": "expected an integer",
        "int_from_float": "expected an integer",
        "float_type": "expected a number",
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "list_type": "expected a list",
        "dict_type": "expected a mapping",
        "missing": "missing",
    }
    if kind in messages:
        msg = messages[kind] + got
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        msg = f"must be {op} {bound}{got}"
    elif kind == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        msg = f"expected one of {allowed}{got}"
    elif kind == "too_short":
        msg = f"expected at least {ctx.get('min_length')} item(s){got}"
    elif kind in ("schedule", "finite"):
        msg = err["msg"]
    else:
        msg = err["msg"][0].lower() + err["msg"][1:] + got
    # a nullable key says so; an item of a list is named by its index
    if name in fields and kind not in ("schedule",) and len(loc) == 1:
        if type(None) in get_args(fields[name].annotation) and "or null" not in msg:
            msg = msg.replace(got, f" or null{got}") if got in msg else msg + " or null"
    if len(loc) > 1 and loc[1].isdigit():
        msg = f"item {loc[1]}: {msg}"
    return name, msg


def validate_section(model: type[Section], raw: Mapping[str, Any] | None, section: str) -> dict:
    """Validate ``raw`` against ``model``; the result has every key (defaults filled in).

    Raises :class:`ConfigError` naming ``section.key`` for the first thing that is wrong."""
    return parse_section(model, raw, section).model_dump()


def parse_section(model: type[Section], raw: Mapping[str, Any] | None, section: str):
    """The validated ``model`` instance of ``raw`` (see :func:`validate_section`)."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(section, f"expected a mapping, got {raw!r}")
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # the most useful error first: an unknown key, then the plain ones, then unions' branches
        err = sorted(errors, key=lambda e: (e["type"] != "extra_forbidden", len(e["loc"])))[0]
        name, msg = _describe(err, model)
        raise ConfigError(f"{section}.{name}" if name else section, msg) from None


def explain_section(model: type[Section]) -> list[dict]:
    """One row per key: ``{"key", "type", "default", "unit", "doc"}``."""
    rows = []
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        rows.append(
            {
                "key": f.alias or name,
                "type": extra.get("type") or type_name(f.annotation, f.metadata),
                "default": f.default,
                "unit": extra.get("unit") or unit_of(name),
                "doc": f.description or "",
            }
        )
    return rows


def type_name(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """A short human name of a field's type: ``int >= 1``, ``float > 0 | null``, ``'tanh' | 'relu'``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0], [*annotation.__metadata__, *metadata])
    if origin in (Union, UnionType):
        return " | ".join(type_name(a, metadata if a is not type(None) else ()) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0], metadata if not _length(metadata) else ())}"
    if annotation is type(None):
        return "null"
    name = getattr(annotation, "__name__", str(annotation))
    flat = [x for m in metadata for x in (getattr(m, "metadata", None) or [m])]
    bounds = [
        f"{op} {getattr(m, attr):g}"
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
        for m in flat
        if getattr(m, attr, None) is not None
    ]
    return " ".join([name, *bounds]) if bounds else name


def _length(metadata: Sequence[Any]) -> bool:
    return any(getattr(m, "min_length", None) is not None for m in metadata)
