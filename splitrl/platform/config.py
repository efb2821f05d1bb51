"""Run configuration: YAML sections, ``--set dotted.key=value`` overrides and validation.

A config has the sections ``scenario``, ``algorithm`` and ``evaluation`` (declared by the world
that ``scenario.world`` names, :mod:`splitrl.worlds`) and ``stop``, ``tracking`` and
``resources`` (declared here, the same in every world).  Every key has a default; an unknown key
or a bad value is a :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.core.schema import PositiveFloat, PositiveInt, Section, explain_section, key, validate_section

__all__ = [
    "ConfigError",
    "SECTIONS",
    "apply_override",
    "explain",
    "flatten",
    "load_config",
    "parse_set",
    "resolve_config",
]


class StopSection(Section):
    """When training stops: any criterion that is set (at least one must be)."""

    iterations: PositiveInt | None = key(50, "training iterations")
    env_steps: PositiveInt | None = key(None, "env steps sampled (the world's step: a period, a window, a slot)")
    time_s: PositiveFloat | None = key(None, "wall-clock time of training", unit="s")


class TrackingSection(Section):
    mlflow_uri: str | None = key(None, "MLflow tracking URI (null: sqlite:///mlflow.db in the working directory)")
    experiment: str = key("splitrl", "MLflow experiment name")
    run_name: str | None = key(None, "MLflow run name (null: <algorithm>-<scenario name>)")
    enabled: bool = key(True, "false: no MLflow logging at all")


class ResourcesSection(Section):
    num_cpus: PositiveInt | None = key(None, "local Ray CPUs (null: this machine's); ignored with an address")
    num_env_runners: int = key(1, "rollout workers (0: sample in the driver)", ge=0)
    num_envs_per_env_runner: PositiveInt = key(16, "batched envs per runner (one vectorised simulator)")
    checkpoint_every: PositiveInt = key(10, "iterations between checkpoints (and always at the end)")
    torch_threads: PositiveInt = key(
        1,
        "torch intra-op threads in this process (its local learner, env runner and evaluation); "
        "Ray workers get one per CPU they hold. The worlds' small MLPs run fastest on one",
    )


def set_torch_threads(cfg: dict) -> None:
    """Apply ``resources.torch_threads`` to this process (torch's default, one per core, makes
    the tiny per-step forward passes and minibatch updates spin: measured 10x slower on 2 cores
    with two trainings side by side, ``docs/scaling.md``)."""
    import torch

    torch.set_num_threads(cfg.get("resources", {}).get("torch_threads", 1))


#: The sections every world shares, and their schemas.
PLATFORM_SECTIONS: dict[str, type[Section]] = {
    "stop": StopSection,
    "tracking": TrackingSection,
    "resources": ResourcesSection,
}
#: Every section of a config, in the order of a resolved config.
SECTIONS = ("scenario", "algorithm", "stop", "evaluation", "tracking", "resources")


def parse_set(item: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", yaml-parsed value)``."""
    if "=" not in item:
        raise ConfigError(item, "expected --set dotted.key=value")
    name, raw = item.split("=", 1)
    name = name.strip()
    if not name or any(not part for part in name.split(".")):
        raise ConfigError(item, "expected --set dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(name, f"cannot parse value {raw!r}: {exc}") from None
    return name, value


def apply_override(cfg: dict, dotted: str, value: Any) -> None:
    """Set ``cfg[a][b] = value`` for ``dotted = "a.b"`` (sections created as needed)."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise ConfigError(dotted, f"{part!r} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve_config(raw: Mapping[str, Any] | None, sets: list[str] | tuple[str, ...] = ()) -> dict:
    """Merge ``sets`` into ``raw``, validate everything and return the resolved config.

    Every section of the result holds every key (defaults filled in); ``scenario`` is a plain
    dict of the world's resolved scenario.
    """
    cfg = copy.deepcopy(dict(raw or {}))
    for item in sets:
        apply_override(cfg, *parse_set(item))
    for section, body in cfg.items():
        if section not in SECTIONS:
            raise ConfigError(section, f"unknown section; allowed: {', '.join(SECTIONS)}")
        if not isinstance(body, dict) and body is not None:
            raise ConfigError(section, f"expected a mapping, got {body!r}")
    world = worlds.of(cfg)
    cfg = world.upgrade_config(cfg)  # a run directory's config.yaml from an older version
    scenario = world.resolve_scenario(cfg.get("scenario") or {})
    out = {"scenario": scenario, "algorithm": world.resolve_algorithm(cfg.get("algorithm") or {})}
    out["stop"] = validate_section(StopSection, cfg.get("stop"), "stop")
    if all(v is None for v in out["stop"].values()):
        raise ConfigError("stop", "set at least one of iterations, env_steps, time_s")
    out["evaluation"] = world.resolve_evaluation(cfg.get("evaluation") or {}, scenario)
    for section in ("tracking", "resources"):
        out[section] = validate_section(PLATFORM_SECTIONS[section], cfg.get(section), section)
    return out


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for name, value in cfg.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


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


def explain(world_name: str) -> dict[str, list[dict]]:
    """Every section's keys for a world: ``{section: [{"key", "type", "default", "unit", "doc"}]}``."""
    world = worlds.get(world_name)
    sections = world.explain()
    out = {}
    for section in SECTIONS:
        out[section] = sections[section] if section in sections else explain_section(PLATFORM_SECTIONS[section])
    for row in out["algorithm"]:
        if row["key"] == "name":
            row["default"] = world.algorithm_names()[0]
            row["type"] = " | ".join(repr(n) for n in world.algorithm_names())
    for row in out["evaluation"]:
        if row["key"] == "baselines":
            row["type"] = f"list of {' | '.join(repr(b) for b in world.baselines)} | null"
    return out


def _table(rows: list[dict]) -> list[str]:
    lines = ["| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for r in rows:
        default = "null" if r["default"] is None else yaml.safe_dump(r["default"], default_flow_style=True, width=1000)
        default = default.strip().removesuffix("...").strip()
        cells = [f"`{r['key']}`", r["type"], f"`{default}`", r["unit"], r["doc"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def explain_markdown(world_name: str) -> str:
    """A world's own sections (``scenario``, ``algorithm``, ``evaluation``) and its metrics as
    Markdown tables, as the README shows them."""
    world = worlds.get(world_name)
    sections = explain(world_name)
    lines = [f"### `scenario.world: {world.name}` ({world.title})", ""]
    for section in ("scenario", "algorithm", "evaluation"):
        lines += [f"`{section}`", "", *_table(sections[section]), ""]
    lines += [
        "Metrics (JSON and CSV values in the SI unit; tables, progress lines and figures in the shown unit):",
        "",
        "| metric | SI unit | shown in | meaning | logged every iteration |",
        "|---|---|---|---|---|",
    ]
    for m in world.metrics:
        lines.append(f"| `{m.key}` | {m.si_unit} | {m.unit or '1'} | {m.label} | {'yes' if m.train else ''} |")
    return "\n".join(lines) + "\n"


def readme_markdown(names: tuple[str, ...] = worlds.BUILTIN) -> str:
    """The README's generated part: the worlds, every world's keys and metrics, the shared sections."""
    lines = [
        "| `scenario.world` | world | algorithms (`algorithm.name`) | baselines | env ids |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        w = worlds.get(name)
        ids = [*w.gym_envs, *w.rllib_envs]
        lines.append(
            f"| `{name}` | {w.title}: {w.doc} | {', '.join(f'`{a}`' for a in w.algorithm_names())} | "
            f"{', '.join(w.baselines)} | {', '.join(f'`{i}`' for i in ids)} |"
        )
    lines.append("")
    for name in names:
        lines.append(explain_markdown(name))
    lines += ["### Every world: `stop`, `tracking`, `resources`", ""]
    for section, schema in PLATFORM_SECTIONS.items():
        lines += [f"`{section}`", "", *_table(explain_section(schema)), ""]
    return "\n".join(lines).rstrip() + "\n"
