"""Run configuration: YAML sections, ``--set dotted.key=value`` overrides and validation.

A config has the sections below; every key has a default, an unknown key or a value of the wrong
type is a :class:`ConfigError` naming the dotted key.  ``scenario`` is validated by
:func:`splitrl.envs.scenario.make_scenario` (its errors name ``scenario.<key>`` as well).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from splitrl.envs.scenario import LyaPPOScenario, ScenarioError, make_scenario

BASELINES = ("Fix-Cov", "Random-Cov", "Local-only", "Edge-only", "Greedy-Cov")

#: Defaults of every section except ``scenario`` (whose defaults are the dataclass's).
DEFAULTS: dict[str, dict[str, Any]] = {
    "evaluation": {
        "episodes": 5,                    # seeded episodes per policy
        "seed": 10_000,                   # episode i uses seed + i (the same for every policy)
        "episode_periods": None,          # null: the scenario's episode_periods
        "baselines": list(BASELINES),     # which non-learning baselines `compare` runs
        "fixed_partition": "mid",         # Fix-Cov: "mid", "local", "edge", or one index per service
        "greedy_lookahead_periods": 1,    # Greedy-Cov: periods simulated per candidate
        "greedy_sweeps": 1,               # Greedy-Cov: coordinate-search passes per period
        "greedy_terminal_cost": "drain",  # Greedy-Cov: "drain" (backlog still owed) or "none"
    },
}


class ConfigError(ValueError):
    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


def parse_set(item: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", yaml-parsed value)``."""
    if "=" not in item:
        raise ConfigError(item, "expected --set dotted.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(item, "expected --set dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"cannot parse value {raw!r}: {exc}") from None
    return key, value


def _apply(cfg: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise ConfigError(key, f"{part!r} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _check_int(key, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}")
    return value


def _validate_evaluation(ev: dict, scenario: LyaPPOScenario) -> dict:
    out = copy.deepcopy(DEFAULTS["evaluation"])
    for key, value in ev.items():
        if key not in out:
            raise ConfigError(f"evaluation.{key}", f"unknown key; allowed: {', '.join(out)}")
        out[key] = value
    _check_int("evaluation.episodes", out["episodes"], 1)
    _check_int("evaluation.seed", out["seed"], 0)
    _check_int("evaluation.greedy_lookahead_periods", out["greedy_lookahead_periods"], 1)
    _check_int("evaluation.greedy_sweeps", out["greedy_sweeps"], 1)
    if out["episode_periods"] is not None:
        _check_int("evaluation.episode_periods", out["episode_periods"], 1)
    if out["greedy_terminal_cost"] not in ("drain", "none"):
        raise ConfigError("evaluation.greedy_terminal_cost",
                          f"expected 'drain' or 'none', got {out['greedy_terminal_cost']!r}")
    bl = out["baselines"]
    if not isinstance(bl, list) or any(b not in BASELINES for b in bl):
        raise ConfigError("evaluation.baselines", f"expected a list of {', '.join(BASELINES)}; got {bl!r}")
    fp = out["fixed_partition"]
    if isinstance(fp, str):
        if fp not in ("mid", "local", "edge"):
            raise ConfigError("evaluation.fixed_partition", f"expected 'mid', 'local', 'edge' or a list "
                              f"of {scenario.services_per_device} indices, got {fp!r}")
    elif isinstance(fp, list) and len(fp) == scenario.services_per_device:
        from splitrl.envs.dnn import partition_table
        for n, (k, model) in enumerate(zip(fp, scenario.models)):
            top = partition_table(model, scenario.input_bits_per_element).num_points - 1
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= top:
                raise ConfigError("evaluation.fixed_partition", f"index {n} ({model}) must be an integer "
                                  f"in 0..{top}, got {k!r}")
    else:
        raise ConfigError("evaluation.fixed_partition", f"expected 'mid', 'local', 'edge' or a list of "
                          f"{scenario.services_per_device} indices, got {fp!r}")
    return out


def resolve_config(raw: Mapping[str, Any] | None, sets: list[str] | tuple[str, ...] = ()) -> dict:
    """Merge ``sets`` into ``raw``, validate everything and return the resolved config.

    The result has ``scenario`` as a plain dict of every scenario key (resolved defaults
    included) and the other sections with their defaults filled in.
    """
    cfg = copy.deepcopy(dict(raw or {}))
    for item in sets:
        key, value = parse_set(item)
        _apply(cfg, key, value)
    allowed = ("scenario", *DEFAULTS)
    for section, body in cfg.items():
        if section not in allowed:
            raise ConfigError(section, f"unknown section; allowed: {', '.join(allowed)}")
        if not isinstance(body, dict) and body is not None:
            raise ConfigError(section, f"expected a mapping, got {body!r}")
    try:
        scenario = make_scenario(cfg.get("scenario") or {})
    except ScenarioError as exc:
        raise ConfigError(f"scenario.{exc.key}", str(exc).split(": ", 1)[1]) from None
    return {
        "scenario": scenario.to_dict(),
        "evaluation": _validate_evaluation(cfg.get("evaluation") or {}, scenario),
    }


def load_config(path: str | Path | None, sets: list[str] | tuple[str, ...] = ()) -> dict:
    """Read a YAML config (``None``: all defaults) and resolve it with ``sets``."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(str(path), "config file not found")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(str(path), f"not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(str(path), "expected a mapping of sections at the top level")
    return resolve_config(raw, sets)
