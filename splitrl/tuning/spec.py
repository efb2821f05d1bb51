"""Sweep files: a base config and what varies (scenario grid, algorithms, seeds, a search space).

A sweep file (YAML; see ``configs/sweeps/`` and the README)::

    name: my-sweep                   # sweep name: MLflow parent run, default output directory
    base: ../my_run.yaml             # base run config, relative to this file
    set:                             # overrides of the base config for every trial (dotted keys)
      stop.time_s: 300
    grid:                            # scenario grid: every combination is one scenario point
      scenario.num_devices: [2, 4, 8]
    algorithms: [ALG1, ALG2]         # trained at every point (default: the base's algorithm.name)
    seeds: [0, 1]                    # algorithm.seed of the trials (default: the base's)
    search:                          # hyperparameter search space, sampled num_samples times
      algorithm.lr: {loguniform: [1.0e-4, 1.0e-3]}
      algorithm.clip: {choice: [0.1, 0.2]}
      algorithm.num_epochs: {grid: [5, 10]}
    num_samples: 1
    baselines: [BASELINE1]           # evaluated at every scenario point (null: the base's; []: none)
    metric: episode_return_mean      # training metric for the scheduler and the best checkpoint
    mode: max
    scheduler: fifo                  # fifo | asha | {name: asha, grace_period, reduction_factor, max_t}
    max_concurrent: null             # trials at once (null: cluster CPUs // CPUs per trial)
    plot_metrics: [METRIC1]          # evaluation metrics drawn against the first grid key (the world's)

Every error is a :class:`~splitrl.platform.config.ConfigError` naming the sweep key (and, for a
value that the run config rejects, the config key) and what is allowed.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import yaml

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.platform.config import apply_override, resolve_config

SWEEP_KEYS = (
    "name",
    "description",
    "base",
    "set",
    "grid",
    "algorithms",
    "seeds",
    "search",
    "num_samples",
    "baselines",
    "metric",
    "mode",
    "scheduler",
    "max_concurrent",
    "plot_metrics",
)
SEARCH_KINDS = ("grid", "choice", "uniform", "loguniform")
SCHEDULERS = ("fifo", "asha")
#: Keys the sweep sets itself (``algorithms``, ``seeds``); not allowed in ``grid`` or ``search``.
_OWN_KEYS = ("algorithm.name", "algorithm.seed")


def train_metrics(world) -> tuple[str, ...]:
    """Metrics a trial reports every iteration (the scheduler's and best checkpoint's choices)."""
    return ("episode_return_mean", *world.train_metric_keys())


def eval_metrics(world) -> tuple[str, ...]:
    """Evaluation metrics of a trial (``eval/<metric>``, the comparison's)."""
    return tuple(m.key for m in world.metrics)


def _err(key: str, message: str) -> ConfigError:
    return ConfigError(key, message)


def _resolve(raw: dict, overrides: dict[str, Any], where: str) -> dict:
    """Resolve ``raw`` with dotted ``overrides``; a rejected value names the sweep key ``where``."""
    cfg = copy.deepcopy(raw)
    try:
        for key, value in overrides.items():
            apply_override(cfg, key, value)
        return resolve_config(cfg)
    except ConfigError as exc:
        raise _err(where, str(exc)) from None


def _check_dotted(key: Any, where: str) -> str:
    if not isinstance(key, str) or key.count(".") < 1 or any(not p for p in key.split(".")):
        raise _err(where, f"expected a dotted config key such as scenario.num_devices, got {key!r}")
    if key in _OWN_KEYS:
        raise _err(f"{where}.{key}", "set by the sweep's 'algorithms' / 'seeds' lists; use those")
    return key


def _check_search(key: str, spec: Any) -> dict:
    where = f"search.{key}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SEARCH_KINDS:
        raise _err(
            where,
            f"expected one of {{grid: [...]}}, {{choice: [...]}}, {{uniform: [low, high]}}, "
            f"{{loguniform: [low, high]}}, got {spec!r}",
        )
    kind, arg = next(iter(spec.items()))
    if kind in ("grid", "choice"):
        if not isinstance(arg, list) or not arg:
            raise _err(f"{where}.{kind}", f"expected a non-empty list of values, got {arg!r}")
        return {"kind": kind, "values": arg}
    ok = (
        isinstance(arg, list)
        and len(arg) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in arg)
    )
    if not ok or not arg[0] < arg[1]:
        raise _err(f"{where}.{kind}", f"expected [low, high] with finite numbers low < high, got {arg!r}")
    if kind == "loguniform" and arg[0] <= 0:
        raise _err(f"{where}.{kind}", f"bounds must be > 0 for a log-uniform draw, got {arg!r}")
    return {"kind": kind, "low": float(arg[0]), "high": float(arg[1])}


def _search_probes(s: dict) -> list:
    return s["values"] if s["kind"] in ("grid", "choice") else [s["low"], s["high"]]


def grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's key order (first key slowest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]


def fmt_value(v: Any) -> str:
    """A swept value as text: floats short (``1e+09``), everything else as is."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def point_key(point: dict[str, Any]) -> str:
    """A stable text id of a scenario point (``""`` for the base point)."""
    return ",".join(f"{k.split('.')[-1]}={fmt_value(v)}" for k, v in point.items())


def load_sweep(path: str | Path) -> dict:
    """Read and validate a sweep file; returns the resolved spec (see :func:`validate_sweep`)."""
    p = Path(path)
    if not p.is_file():
        raise _err(str(path), "sweep file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise _err(str(path), f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise _err(str(path), "expected a mapping with at least 'base' at the top level")
    return validate_sweep(raw, p.resolve().parent)


def validate_sweep(raw: dict, root: Path) -> dict:
    """Validate a sweep mapping (``base`` relative to ``root``).

    Returns ``{**keys, "base_config": raw base dict with ``set`` applied, "points": {point_key:
    resolved config}, "world": ..., "num_trials": ...}``; every scenario point and every search
    value is resolved once here, so a bad value fails before anything starts.
    """
    for key in raw:
        if key not in SWEEP_KEYS:
            raise _err(str(key), f"unknown sweep key; allowed: {', '.join(SWEEP_KEYS)}")
    if "base" not in raw:
        raise _err("base", "missing: the run config the sweep varies (a path relative to the sweep file)")
    base_path = (root / str(raw["base"])).resolve()
    if not base_path.is_file():
        raise _err("base", f"config file not found: {base_path}")
    try:
        base = yaml.safe_load(base_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise _err("base", f"{base_path} is not valid YAML: {exc}") from None
    sets = raw.get("set") or {}
    if not isinstance(sets, dict):
        raise _err("set", f"expected a mapping of dotted keys to values, got {sets!r}")
    base = copy.deepcopy(base)
    for key, value in sets.items():
        apply_override(base, _check_dotted(key, "set"), value)
    cfg0 = _resolve(base, {}, "set" if sets else "base")
    world = worlds.of(cfg0)

    name = raw.get("name") or base_path.stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise _err("name", f"expected letters, digits, '-' or '_', got {name!r}")

    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise _err("grid", f"expected a mapping of dotted keys to lists of values, got {grid!r}")
    for key, values in grid.items():
        _check_dotted(key, "grid")
        if not isinstance(values, list) or not values:
            raise _err(f"grid.{key}", f"expected a non-empty list of values, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise _err(f"grid.{key}", f"values repeat: {values!r}")

    algorithms = raw.get("algorithms") or [cfg0["algorithm"]["name"]]
    if not isinstance(algorithms, list) or len(set(algorithms)) != len(algorithms):
        raise _err("algorithms", f"expected a list of distinct algorithm names, got {algorithms!r}")
    for a in algorithms:
        if a not in world.algorithm_names():
            raise _err(
                "algorithms",
                f"{a!r} does not run in world {world.name!r}; expected some of {', '.join(world.algorithm_names())}",
            )
    seeds = raw.get("seeds") if raw.get("seeds") is not None else [cfg0["algorithm"]["seed"]]
    if (
        not isinstance(seeds, list)
        or not seeds
        or len(set(seeds)) != len(seeds)
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
    ):
        raise _err("seeds", f"expected a non-empty list of distinct integers >= 0, got {seeds!r}")

    search_raw = raw.get("search") or {}
    if not isinstance(search_raw, dict):
        raise _err("search", f"expected a mapping of dotted keys to search specs, got {search_raw!r}")
    search = {}
    for key, spec in search_raw.items():
        _check_dotted(key, "search")
        if key in grid:
            raise _err(f"search.{key}", "also in 'grid'; a key varies in one place")
        search[key] = _check_search(key, spec)
        for value in _search_probes(search[key]):
            _resolve(base, {key: value}, f"search.{key}")

    num_samples = raw.get("num_samples", 1)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise _err("num_samples", f"expected an integer >= 1, got {num_samples!r}")

    points = {}
    for point in grid_points(grid):
        for a in algorithms:  # each algorithm at each point must resolve (world, keys, ranges)
            _resolve(base, {**point, "algorithm.name": a}, f"grid.{next(iter(point))}" if point else "base")
        points[point_key(point)] = {"values": point, "config": _resolve(base, point, "grid") if point else cfg0}

    baselines = raw.get("baselines", None)
    allowed_b = tuple(world.baselines)
    if baselines is None:
        baselines = list(cfg0["evaluation"]["baselines"] or allowed_b)
    if not isinstance(baselines, list) or any(b not in allowed_b for b in baselines):
        raise _err(
            "baselines", f"expected a list of some of {', '.join(allowed_b)} (world {world.name!r}), got {baselines!r}"
        )

    metric = raw.get("metric", "episode_return_mean")
    if metric not in train_metrics(world):
        raise _err(
            "metric", f"expected one of {', '.join(train_metrics(world))} (world {world.name!r}), got {metric!r}"
        )
    mode = raw.get("mode", "max" if metric == "episode_return_mean" else "min")
    if mode not in ("min", "max"):
        raise _err("mode", f"expected min or max, got {mode!r}")

    sched = raw.get("scheduler", "asha" if search and not grid else "fifo")
    if isinstance(sched, str):
        sched = {"name": sched}
    if not isinstance(sched, dict) or sched.get("name") not in SCHEDULERS:
        raise _err(
            "scheduler",
            f"expected one of {', '.join(SCHEDULERS)} or {{name: asha, grace_period: .., "
            f"reduction_factor: .., max_t: ..}}, got {raw.get('scheduler')!r}",
        )
    allowed_s = {"fifo": ("name",), "asha": ("name", "grace_period", "reduction_factor", "max_t")}[sched["name"]]
    for key, value in sched.items():
        if key not in allowed_s:
            raise _err(f"scheduler.{key}", f"unknown for {sched['name']}; allowed: {', '.join(allowed_s)}")
        if key != "name" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1):
            raise _err(f"scheduler.{key}", f"expected a number >= 1, got {value!r}")
    if sched["name"] == "asha":
        sched = {"grace_period": 1, "reduction_factor": 3, "max_t": cfg0["stop"]["iterations"] or 10_000, **sched}

    max_conc = raw.get("max_concurrent")
    if max_conc is not None and (isinstance(max_conc, bool) or not isinstance(max_conc, int) or max_conc < 1):
        raise _err("max_concurrent", f"expected an integer >= 1 or null, got {max_conc!r}")

    plot_metrics = raw.get("plot_metrics") or [m.key for m in world.metrics if m.plot]
    if not isinstance(plot_metrics, list) or any(m not in eval_metrics(world) for m in plot_metrics):
        raise _err("plot_metrics", f"expected a list of some of {', '.join(eval_metrics(world))}, got {plot_metrics!r}")

    search_combos = math.prod(len(s["values"]) for s in search.values() if s["kind"] == "grid")
    return {
        "name": name,
        "description": raw.get("description", ""),
        "base": str(base_path),
        "set": sets,
        "grid": grid,
        "algorithms": algorithms,
        "seeds": seeds,
        "search": search,
        "num_samples": num_samples,
        "baselines": baselines,
        "metric": metric,
        "mode": mode,
        "scheduler": sched,
        "max_concurrent": max_conc,
        "plot_metrics": plot_metrics,
        "world": world.name,
        "base_config": base,
        "points": points,
        "num_trials": len(points) * len(algorithms) * len(seeds) * num_samples * search_combos,
    }


def spec_fingerprint(spec: dict) -> dict:
    """The parts of a spec that define its trials (compared on ``--resume``)."""
    return {
        k: spec[k]
        for k in ("grid", "algorithms", "seeds", "search", "num_samples", "metric", "mode", "scheduler", "base_config")
    }
