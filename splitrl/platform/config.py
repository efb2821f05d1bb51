"""Run configuration: YAML sections, ``--set dotted.key=value`` overrides and validation.

A config has the sections below; every key has a default, an unknown key or a value of the wrong
type is a :class:`ConfigError` naming the dotted key.  ``scenario`` is validated by
:func:`splitrl.envs.scenario.make_scenario` (its errors name ``scenario.<key>`` as well).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

from splitrl.envs.emh import make_emh_scenario
from splitrl.envs.scenario import LyaPPOScenario, ScenarioError, make_scenario

#: Worlds (``scenario.world``) and their non-learning baselines and algorithms.
WORLDS = ("lyappo", "emh")
BASELINES = ("Fix-Cov", "Random-Cov", "Local-only", "Edge-only", "Greedy-Cov")
EMH_BASELINES = ("Local-only", "AgileNN", "Round-robin", "CSI-sharing")
WORLD_BASELINES = {"lyappo": BASELINES, "emh": EMH_BASELINES}
WORLD_ALGORITHMS = {"lyappo": ("lyappo", "ppo", "ddpg-cov"), "emh": ("emh-ppo", "mahppo", "h-ppo")}

ALGORITHMS = WORLD_ALGORITHMS["lyappo"] + WORLD_ALGORITHMS["emh"]
#: Display names, as used in comparison tables and JSON.
ALGORITHM_NAMES = {"lyappo": "LyaPPO", "ppo": "PPO", "ddpg-cov": "DDPG-Cov", "emh-ppo": "EMH-PPO",
                   "mahppo": "MAHPPO", "h-ppo": "H-PPO"}


#: EMH scenario keys a trained agent brings to a comparison: its MDP and action space and how it
#: observes the world (``compare`` takes the rest, the physics, from its own config)
POLICY_SCENARIO_KEYS = ("mdp", "partitioning", "slot_ms", "queue_obs_cap", "observe_gain")


def policy_name(cfg: Mapping[str, Any]) -> str:
    """Display name of a trained agent: the algorithm's, with the EMH world's variant
    (``EMH-PPO (time-based)``, ``EMH-PPO (vertical)``, ``EMH-PPO (queue cap 50)``, ``... (no CSI)``)."""
    name = ALGORITHM_NAMES[cfg["algorithm"]["name"]]
    sc = cfg["scenario"]
    if sc.get("world") == "emh":
        variants = []
        if sc.get("mdp") == "time":
            variants.append("time-based")
        if sc.get("partitioning") == "vertical":
            variants.append("vertical")
        if sc.get("queue_obs_cap") is not None:
            variants.append(f"queue cap {sc['queue_obs_cap']:g}")
        if sc.get("observe_gain") is False:
            variants.append("no CSI")
        if variants:
            name += f" ({', '.join(variants)})"
    return name

#: Defaults of every section except ``scenario`` (whose defaults are the dataclass's).
DEFAULTS: dict[str, dict[str, Any]] = {
    "algorithm": {
        "name": "lyappo",            # lyappo (PPO + allocators) | ppo (joint, no allocators) | ddpg-cov
        "hidden": [128, 128],        # actor and critic MLP widths (LyaPPO: 2 x 128; EMH-PPO: agent
                                     # heads and critic, 256-128-64)
        "embed": [512, 256],         # EMH-PPO / MAHPPO: embedding network widths (GELU)
        "activation": "tanh",        # tanh | relu
        "lr": 3.0e-4,                # Adam learning rate (PPO); the paper's value
        "gamma": 0.99,               # discount
        "lambda": 0.95,              # GAE lambda (PPO)
        "clip": 0.2,                 # PPO clip epsilon; the paper's value
        "entropy_coeff": 0.0,        # PPO entropy bonus (or a schedule: [[env_step, value], ...])
        "window_entropy_coeff": 0.0, # EMH task MDP: entropy bonus on the window-size entries alone
                                     # (or a schedule, as entropy_coeff)
        "vf_loss_coeff": 0.5,        # PPO value-loss weight
        "vf_clip": 1.0e6,            # PPO value-loss clip (off in practice: RLlib zeroes the critic
                                     # gradient beyond it, and early returns are large)
        "grad_clip": 100.0,          # global gradient-norm clip per module (null: none; Adam alone)
        "reward_scale": 0.01,        # rewards seen by the learner are multiplied by this
        "point_prior_temperature": None,  # EMH world: initial partition-point logits -cost_nominal/T
                                     # (Boltzmann prior over a nominal per-task eq. 8 cost); null: uniform
        "window_prior_logit": None,  # EMH task MDP: added to the initial logit of W = W_max (null: none)
        "slot_masking": False,       # EMH task MDP: task slots beyond the chosen window size are left
                                     # out of the log-probs, entropy and KL (they do not act)
        "reward_clip": None,         # EMH world: costs above this are compressed logarithmically for
                                     # the learner, -c log(1 + cost/c) (null: raw reward)
        "train_batch_size": 4000,    # env steps (periods) per training iteration
        "minibatch_size": 128,       # SGD minibatch (PPO)
        "num_epochs": 10,            # SGD passes per iteration (PPO)
        "actor_lr": 1.0e-4,          # DDPG-Cov actor learning rate
        "critic_lr": 1.0e-3,         # DDPG-Cov critic learning rate
        "tau": 0.005,                # DDPG-Cov target-network soft-update rate
        "buffer_size": 100_000,      # DDPG-Cov replay capacity (transitions)
        "exploration_noise": 0.2,    # DDPG-Cov Gaussian action noise (std, actions in [-1, 1])
        "learning_starts": 1000,     # DDPG-Cov transitions before the first update
        "ddpg_batch_size": 256,      # DDPG-Cov replay minibatch
        "seed": 0,                   # seeds torch, the env runners and the envs
    },
    "stop": {
        "iterations": 50,            # training iterations (any set criterion stops the run)
        "env_steps": None,           # env steps (periods) sampled
        "time_s": None,              # wall-clock seconds
    },
    "tracking": {
        "mlflow_uri": None,          # null: sqlite:///mlflow.db in the working directory
        "experiment": "splitrl",     # MLflow experiment name
        "run_name": None,            # null: <algorithm>-<scenario name>
        "enabled": True,             # false: no MLflow logging at all
    },
    "resources": {
        "num_cpus": None,            # local Ray CPUs (null: this machine's); ignored with an address
        "num_env_runners": 1,        # rollout workers (0: sample in the driver)
        "num_envs_per_env_runner": 16,  # batched envs per runner (one vectorised simulator)
        "checkpoint_every": 10,      # iterations between checkpoints (and always at the end)
    },
    "evaluation": {
        "episodes": 5,                    # seeded episodes per policy
        "seed": 10_000,                   # episode i uses seed + i (the same for every policy)
        "episode_periods": None,          # null: the scenario's episode_periods
        "baselines": None,                # which non-learning baselines `compare` runs (null: all
                                          # of the world's)
        "fixed_tasks": 50,                # EMH world: tasks per device in evaluation episodes (null:
                                          # Poisson, as in training)
        "fixed_distance_m": 50.0,         # EMH world: device distance in evaluation episodes (null:
                                          # drawn at every decision, as in training)
        "fixed_partition": "mid",         # Fix-Cov: "mid", "local", "edge", or one index per service
        "greedy_lookahead_periods": 1,    # Greedy-Cov: periods simulated per candidate
        "greedy_sweeps": 1,               # Greedy-Cov: coordinate-search passes per period
        "greedy_terminal_cost": "drain",  # Greedy-Cov: "drain" (backlog still owed) or "none"
    },
}


#: ``algorithm`` defaults that differ in the EMH world (emh-ppo.md Section V, Table III), applied
#: under the keys a config does not set.
EMH_ALGORITHM_DEFAULTS: dict[str, Any] = {
    "hidden": [256, 128, 64], "activation": "relu", "lr": 1.0e-4, "gamma": 0.95, "train_batch_size": 2048,
    "minibatch_size": 256, "reward_scale": 0.1, "reward_clip": 20.0, "point_prior_temperature": 0.3,
    "grad_clip": None, "window_prior_logit": 2.0, "slot_masking": True,
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


_NULLABLE = {("algorithm", "point_prior_temperature"), ("algorithm", "window_prior_logit"), ("algorithm", "grad_clip"), ("algorithm", "reward_clip"), ("stop", "iterations"), ("stop", "env_steps"), ("stop", "time_s"), ("tracking", "mlflow_uri"), ("tracking", "run_name"),
             ("resources", "num_cpus")}
_NULLABLE_TYPES = {("algorithm", "point_prior_temperature"): float, ("algorithm", "window_prior_logit"): float, ("algorithm", "grad_clip"): float, ("algorithm", "reward_clip"): float, ("stop", "iterations"): int, ("stop", "env_steps"): int, ("stop", "time_s"): float, ("tracking", "mlflow_uri"): str,
                   ("tracking", "run_name"): str, ("resources", "num_cpus"): int}
_POSITIVE = {("algorithm", k) for k in ("lr", "gamma", "clip", "train_batch_size", "minibatch_size", "num_epochs",
                                         "actor_lr", "critic_lr", "tau", "buffer_size", "ddpg_batch_size",
                                         "vf_clip", "grad_clip", "reward_scale", "reward_clip")} | {
    ("stop", "iterations"), ("stop", "env_steps"), ("stop", "time_s"), ("resources", "num_cpus"),
    ("resources", "num_envs_per_env_runner"), ("resources", "checkpoint_every")}


#: Coefficients that also take a piecewise-linear schedule over sampled env steps (RLlib's format).
_SCHEDULABLE = {("algorithm", "entropy_coeff"), ("algorithm", "window_entropy_coeff")}


def _float_or_keep(x):
    """A string that reads as a number becomes that float; anything else stays as it is."""
    try:
        return float(x) if isinstance(x, str) else x
    except ValueError:
        return x


def _check_schedule(key: str, value: list) -> list:
    """``[[env_step, value], ...]``: steps integers from 0, strictly increasing; values >= 0.
    Linear in between and the last value after the last step (RLlib's ``Scheduler``)."""
    want = "a schedule [[0, v0], [env_step, v1], ...] (integer env steps from 0, increasing; values >= 0)"
    if len(value) < 2:
        raise ConfigError(key, f"expected {want}: at least two points, got {value!r}")
    out = []
    for i, pair in enumerate(value):
        if isinstance(pair, list):  # PyYAML reads 1.5e6 (no exponent sign) as a string
            pair = [_float_or_keep(x) for x in pair]
        if (not isinstance(pair, list) or len(pair) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in pair)
                or not float(pair[0]).is_integer()):  # 1.5e6 (a YAML float) is an integer step too
            raise ConfigError(key, f"expected {want}; point {i} is {pair!r}")
        step, v = int(pair[0]), float(pair[1])
        if i == 0 and step != 0:
            raise ConfigError(key, f"expected {want}; the first point's env step is {step}, not 0")
        if out and step <= out[-1][0]:
            raise ConfigError(key, f"expected {want}; env step {step} of point {i} is not after {out[-1][0]}")
        if not math.isfinite(v) or v < 0:
            raise ConfigError(key, f"expected {want}; point {i} has value {pair[1]!r}")
        out.append([step, v])
    return out


def _validate_section(section: str, body: dict) -> dict:
    """Generic checks: known keys, the default's type (ints accepted for floats), ranges."""
    out = copy.deepcopy(DEFAULTS[section])
    for key, value in body.items():
        if key not in out:
            raise ConfigError(f"{section}.{key}", f"unknown key; allowed: {', '.join(out)}")
        out[key] = value
    for key, default in DEFAULTS[section].items():
        value, dotted = out[key], f"{section}.{key}"
        if value is None and (section, key) in _NULLABLE:
            continue
        if isinstance(value, list) and (section, key) in _SCHEDULABLE:
            out[key] = _check_schedule(dotted, value)
            continue
        want = _NULLABLE_TYPES.get((section, key), type(default))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = out[key] = float(value)
        if want is float:  # PyYAML reads 1.5e6 (no exponent sign) as a string
            value = out[key] = _float_or_keep(value)
        if isinstance(value, bool) != (want is bool) or not isinstance(value, want):
            also = " or a schedule [[0, v0], [env_step, v1], ...]" if (section, key) in _SCHEDULABLE else ""
            raise ConfigError(dotted, f"expected {want.__name__}{also}, got {value!r}")
        if (section, key) in _POSITIVE and value <= 0:
            raise ConfigError(dotted, f"must be > 0, got {value}")
        if want in (int, float) and value < 0:
            raise ConfigError(dotted, f"must be >= 0, got {value}")
    return out


def _validate_stop(body: dict) -> dict:
    out = _validate_section("stop", body)
    if all(v is None for v in out.values()):
        raise ConfigError("stop", "set at least one of iterations, env_steps, time_s")
    return out


def _validate_algorithm(body: dict) -> dict:
    out = _validate_section("algorithm", body)
    if out["name"] not in ALGORITHMS:
        raise ConfigError("algorithm.name", f"expected one of {', '.join(ALGORITHMS)}, got {out['name']!r}")
    if out["activation"] not in ("tanh", "relu"):
        raise ConfigError("algorithm.activation", f"expected 'tanh' or 'relu', got {out['activation']!r}")
    for key in ("hidden", "embed"):
        if (not isinstance(out[key], list) or not out[key]
                or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in out[key])):
            raise ConfigError(f"algorithm.{key}", f"expected a list of positive layer widths, got {out[key]!r}")
    if out["point_prior_temperature"] is not None and out["point_prior_temperature"] <= 0:
        raise ConfigError("algorithm.point_prior_temperature",
                          f"must be > 0 or null, got {out['point_prior_temperature']}")
    if not 0 < out["gamma"] <= 1 or not 0 <= out["lambda"] <= 1:
        raise ConfigError("algorithm.gamma" if not 0 < out["gamma"] <= 1 else "algorithm.lambda", "must be in (0, 1]")
    if out["minibatch_size"] > out["train_batch_size"]:
        raise ConfigError("algorithm.minibatch_size", f"must be <= algorithm.train_batch_size "
                          f"({out['train_batch_size']}), got {out['minibatch_size']}")
    return out


def _validate_evaluation(ev: dict, scenario) -> dict:
    out = copy.deepcopy(DEFAULTS["evaluation"])
    for key, value in ev.items():
        if key not in out:
            raise ConfigError(f"evaluation.{key}", f"unknown key; allowed: {', '.join(out)}")
        out[key] = value
    world = scenario.world
    allowed = WORLD_BASELINES[world]
    if out["baselines"] is None:
        out["baselines"] = list(allowed)
    bl = out["baselines"]
    if not isinstance(bl, list) or any(b not in allowed for b in bl):
        raise ConfigError("evaluation.baselines", f"expected a list of {', '.join(allowed)} "
                          f"(world {world!r}); got {bl!r}")
    if out["fixed_tasks"] is not None:
        _check_int("evaluation.fixed_tasks", out["fixed_tasks"], 1)
    fd = out["fixed_distance_m"]
    if fd is not None:
        if isinstance(fd, bool) or not isinstance(fd, (int, float)) or fd <= 0:
            raise ConfigError("evaluation.fixed_distance_m", f"expected a distance > 0 in m or null, got {fd!r}")
        out["fixed_distance_m"] = float(fd)
    _check_int("evaluation.episodes", out["episodes"], 1)
    if world == "emh":
        _check_int("evaluation.seed", out["seed"], 0)
        return out
    _check_int("evaluation.seed", out["seed"], 0)
    _check_int("evaluation.greedy_lookahead_periods", out["greedy_lookahead_periods"], 1)
    _check_int("evaluation.greedy_sweeps", out["greedy_sweeps"], 1)
    if out["episode_periods"] is not None:
        _check_int("evaluation.episode_periods", out["episode_periods"], 1)
    if out["greedy_terminal_cost"] not in ("drain", "none"):
        raise ConfigError("evaluation.greedy_terminal_cost",
                          f"expected 'drain' or 'none', got {out['greedy_terminal_cost']!r}")
    fp = out["fixed_partition"]
    if isinstance(fp, str):
        if fp not in ("mid", "local", "edge"):
            raise ConfigError("evaluation.fixed_partition", f"expected 'mid', 'local', 'edge' or a list "
                              f"of {scenario.services_per_device} indices, got {fp!r}")
    elif isinstance(fp, list) and len(fp) == scenario.services_per_device:
        for n, (k, model, table) in enumerate(zip(fp, scenario.models, scenario.tables())):
            top = table.num_points - 1
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
    raw_scenario = cfg.get("scenario") or {}
    world = raw_scenario.get("world", "lyappo")
    if world not in WORLDS:
        raise ConfigError("scenario.world", f"expected one of {', '.join(WORLDS)}, got {world!r}")
    try:
        if world == "emh":
            scenario = make_emh_scenario(raw_scenario, resolve_l0=True)
        else:
            scenario = make_scenario(raw_scenario)
    except ScenarioError as exc:
        raise ConfigError(f"scenario.{exc.key}", str(exc).split(": ", 1)[1]) from None
    alg_raw = dict(cfg.get("algorithm") or {})
    if world == "emh":
        alg_raw = {**EMH_ALGORITHM_DEFAULTS, "name": "emh-ppo", **alg_raw}
    algorithm = _validate_algorithm(alg_raw)
    if algorithm["name"] not in WORLD_ALGORITHMS[world]:
        raise ConfigError("algorithm.name", f"{algorithm['name']!r} does not run in world {world!r} "
                          f"(scenario.world); expected one of {', '.join(WORLD_ALGORITHMS[world])}")
    return {
        "scenario": scenario.to_dict(),
        "algorithm": algorithm,
        "stop": _validate_stop(cfg.get("stop") or {}),
        "evaluation": _validate_evaluation(cfg.get("evaluation") or {}, scenario),
        "tracking": _validate_section("tracking", cfg.get("tracking") or {}),
        "resources": _validate_section("resources", cfg.get("resources") or {}),
    }


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
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
