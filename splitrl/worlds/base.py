"""The contract between the platform and a world (one paper's system model).

The platform looks a world up by ``scenario.world`` (:func:`splitrl.worlds.get`) and uses only
what is declared here: the world's config schemas, its RLlib algorithms, its baselines, an
evaluation loop and the table of metrics it reports.  A world is a :class:`BaseWorld` subclass
instance named ``WORLD`` in ``splitrl/worlds/<name>/__init__.py``; that module must stay cheap to
import (declarations and import paths as strings; torch, Ray and the simulator are imported by
the functions that need them).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from splitrl.core.errors import ConfigError
from splitrl.core.files import save_figure
from splitrl.core.schema import NonNegativeInt, PositiveInt, Section, explain_section, key, validate_section


def import_object(path: str) -> Any:
    """``"package.module:name"`` -> the object (imported on demand)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Metric:
    """A reported quantity, declared once.  The stored value is SI (``si_unit``); it is shown as
    ``value * scale`` in ``unit``.  The progress line, the ``compare`` table and JSON, the sweep
    CSVs and summaries, figures and MLflow metric names are all derived from this declaration."""

    key: str  # name in results, JSON, CSV columns (eval/<key>) and MLflow
    si_unit: str  # unit of the stored value, e.g. "J/slot per device"
    label: str  # what it is, for axes and --explain: "average device energy"
    unit: str = ""  # display unit, e.g. "mJ/slot"
    scale: float = 1.0  # shown value = stored value * scale
    fmt: str = ".3f"  # format of the shown value
    short: str = ""  # column header in the compare table (default: key)
    train: bool = False  # also logged every training iteration by the world's episode callback
    table: bool = True  # a column of the compare table
    progress: bool = False  # on the live progress line of `train` and `compare`
    plot: bool = False  # a default figure of a sweep
    higher_is_better: bool = False

    def show(self, value: Any) -> str:
        """The display text of a stored value (``-`` when missing or NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return format(float(value) * self.scale, self.fmt)

    @property
    def heading(self) -> str:
        name = self.short or self.key
        return f"{name} [{self.unit}]" if self.unit else name

    @property
    def axis_label(self) -> str:
        return f"{self.label} [{self.unit}]" if self.unit else self.label


@dataclass(frozen=True)
class Algorithm:
    """An RLlib algorithm of a world.  ``build`` and ``load_policy`` are import paths, so that
    looking a world up imports neither torch nor Ray."""

    name: str  # algorithm.name, e.g. "emh-ppo"
    title: str  # display name, e.g. "EMH-PPO"
    build: str  # "pkg.mod:fn", fn(cfg) -> ray.rllib AlgorithmConfig
    load_policy: str  # "pkg.mod:fn", fn(checkpoint_dir, cfg, name) -> Policy
    doc: str = ""


class _EnvCreator:
    """RLlib env creator for an entry point (picklable, imports on first use)."""

    def __init__(self, entry_point: str):
        self.entry_point = entry_point

    def __call__(self, config):
        return import_object(self.entry_point)(config)


class Policy:
    """A trained agent or a baseline.  ``sim`` is what the world's :meth:`BaseWorld.evaluate`
    hands it (its env or simulator, as the world documents).  All randomness comes from the
    generator seeded in :meth:`reset`."""

    name = "policy"
    #: scenario keys a trained agent brings to a comparison (its MDP and observation)
    scenario_overrides: Mapping[str, Any] = {}

    def reset(self, sim: Any, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, sim: Any, obs: Any) -> Any:
        raise NotImplementedError


class EvaluationSection(Section):
    """The ``evaluation`` keys every world has; a world's schema extends it."""

    episodes: PositiveInt = key(5, "seeded episodes per policy")
    seed: NonNegativeInt = key(10_000, "episode i uses seed + i (the same for every policy)")
    baselines: list[str] | None = key(None, "which non-learning baselines `compare` runs (null: all of the world's)")


class BaseWorld:
    """Defaults for everything a world may leave out; a world declares the class attributes."""

    name: ClassVar[str]  # scenario.world
    title: ClassVar[str]  # display name
    doc: ClassVar[str] = ""  # one line: what the world is
    metrics: ClassVar[Sequence[Metric]] = ()
    algorithms: ClassVar[Sequence[Algorithm]] = ()  # the first is the default algorithm.name
    algorithm_schema: ClassVar[type[Section]]  # the world's `algorithm` section
    evaluation_schema: ClassVar[type[Section]] = EvaluationSection
    #: baseline name -> "pkg.mod:factory", factory(evaluation section) -> Policy
    baselines: ClassVar[Mapping[str, str]] = {}
    #: scenario keys in which a checkpoint may differ from the config it is compared on
    policy_scenario_keys: ClassVar[tuple[str, ...]] = ()
    #: extra ``splitrl`` subcommands: name -> "pkg.mod:register", register(subparsers) adds the
    #: subparser and sets ``func`` (e.g. a world's data builder); kept cheap to import
    commands: ClassVar[Mapping[str, str]] = {}
    #: evaluation keys recorded in a comparison's JSON
    evaluation_record_keys: ClassVar[tuple[str, ...]] = ("episodes", "seed")
    #: gymnasium id -> entry point (registered by ``import splitrl``); the entry point takes a
    #: ``config`` mapping of scenario keys
    gym_envs: ClassVar[Mapping[str, str]] = {}
    #: RLlib ``MultiAgentEnv`` id -> entry point (registered with RLlib's env registry)
    rllib_envs: ClassVar[Mapping[str, str]] = {}
    #: the same multi-agent envs as PettingZoo ``ParallelEnv`` constructors, by id
    pettingzoo_envs: ClassVar[Mapping[str, str]] = {}
    #: a tiny raw config (any sections) for the contract test and quick checks: small scenario,
    #: tiny networks and batches, one iteration, one evaluation episode
    smoke_config: ClassVar[Mapping[str, Any]] = {}
    #: env-runner metric that is the episode return in env units (e.g. a team return); None:
    #: RLlib's ``episode_return_mean`` divided by ``algorithm.reward_scale``
    return_metric: ClassVar[str | None] = None
    #: learner stats reported as their minimum over modules (``learner/<key>_min``)
    learner_min_keys: ClassVar[tuple[str, ...]] = ()

    # ---- config -------------------------------------------------------------------------------
    def resolve_scenario(self, raw: Mapping[str, Any]) -> dict:
        """The validated scenario with every key; raises ``ConfigError("scenario.<key>", ...)``."""
        raise NotImplementedError

    def explain_scenario(self) -> list[dict]:
        """One row per scenario key: ``{"key", "type", "default", "unit", "doc"}``."""
        raise NotImplementedError

    def resolve_algorithm(self, raw: Mapping[str, Any]) -> dict:
        raw = dict(raw or {})
        raw.setdefault("name", self.algorithms[0].name)
        out = validate_section(self.algorithm_schema, raw, "algorithm")
        if out["name"] not in self.algorithm_names():
            from splitrl import worlds

            elsewhere = [w for w in worlds.names() if w != self.name and out["name"] in worlds.get(w).algorithm_names()]
            where = f" does not run in world {self.name!r} (scenario.world)" if elsewhere else ""
            raise ConfigError(
                "algorithm.name", f"{out['name']!r}{where}; expected one of {', '.join(self.algorithm_names())}"
            )
        self.check_algorithm(out)
        return out

    def check_algorithm(self, algorithm: dict) -> None:
        """Checks across keys of the ``algorithm`` section (raise ``ConfigError``)."""

    def resolve_evaluation(self, raw: Mapping[str, Any], scenario: dict) -> dict:
        out = validate_section(self.evaluation_schema, raw, "evaluation")
        if out["baselines"] is None:
            out["baselines"] = list(self.baselines)
        bad = [b for b in out["baselines"] if b not in self.baselines]
        if bad:
            raise ConfigError(
                "evaluation.baselines",
                f"expected a list of {', '.join(self.baselines)} (world {self.name!r}); got {out['baselines']!r}",
            )
        self.check_evaluation(out, scenario)
        return out

    def check_evaluation(self, evaluation: dict, scenario: dict) -> None:
        """Checks of the ``evaluation`` section that depend on the scenario."""

    def upgrade_config(self, cfg: Mapping[str, Any], *, saved: bool = False) -> dict:
        """A raw config written by an older version, in today's schema.  The old platform accepted
        every world's ``algorithm`` and ``evaluation`` keys in every world (where they had no
        effect) and a run directory's ``config.yaml`` holds them all: a key this world does not
        have is dropped when it holds its old default (:data:`splitrl.compat.LEGACY_DEFAULTS`), and
        any such key when the config is a checkpoint's (``saved``), which is known to have trained
        without it.  Any other unknown key stays, for validation to reject."""
        from splitrl.compat import LEGACY_DEFAULTS

        out = dict(cfg)
        for section, schema in (("algorithm", self.algorithm_schema), ("evaluation", self.evaluation_schema)):
            body = out.get(section)
            if not isinstance(body, dict):
                continue
            known = {f.alias or n for n, f in schema.model_fields.items()}
            legacy = LEGACY_DEFAULTS[section]
            out[section] = {
                k: v for k, v in body.items() if k in known or k not in legacy or not (saved or legacy[k] == v)
            }
        return out

    def explain(self) -> dict[str, list[dict]]:
        """Every world-specific section's keys, for ``splitrl config --explain``."""
        return {
            "scenario": self.explain_scenario(),
            "algorithm": explain_section(self.algorithm_schema),
            "evaluation": explain_section(self.evaluation_schema),
        }

    # ---- algorithms, policies -----------------------------------------------------------------
    def algorithm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.algorithms)

    def algorithm(self, name: str) -> Algorithm:
        for a in self.algorithms:
            if a.name == name:
                return a
        raise ConfigError("algorithm.name", f"expected one of {', '.join(self.algorithm_names())}, got {name!r}")

    def build_algorithm(self, cfg: dict):
        """The RLlib ``AlgorithmConfig`` of a resolved config."""
        self.register_rllib_envs()
        return import_object(self.algorithm(cfg["algorithm"]["name"]).build)(cfg)

    def load_policy(self, checkpoint: Path, cfg: dict, name: str | None = None) -> Policy:
        """The trained policy of a splitrl checkpoint directory (``cfg``: its config)."""
        fn = import_object(self.algorithm(cfg["algorithm"]["name"]).load_policy)
        return fn(Path(checkpoint), cfg, name or self.policy_name(cfg))

    def policy_name(self, cfg: dict) -> str:
        """Display name of a trained agent: its algorithm's title (a world may add its variant)."""
        return self.algorithm(cfg["algorithm"]["name"]).title

    def make_baselines(self, evaluation: dict) -> list[Policy]:
        return [import_object(self.baselines[name])(evaluation) for name in evaluation["baselines"]]

    # ---- envs ---------------------------------------------------------------------------------
    def register_gym_envs(self) -> None:
        """Register the world's gymnasium ids (string entry points: nothing is imported)."""
        import gymnasium as gym

        for env_id, entry_point in self.gym_envs.items():
            if env_id not in gym.registry:
                gym.register(id=env_id, entry_point=entry_point)

    def register_rllib_envs(self) -> None:
        """Register :attr:`rllib_envs` with RLlib's env registry (called before an algorithm is built)."""
        if not self.rllib_envs:
            return
        from ray.tune.registry import register_env

        for env_id, entry_point in self.rllib_envs.items():
            register_env(env_id, _EnvCreator(entry_point))

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, policy: Policy, scenario: dict, evaluation: dict) -> dict[str, float]:
        """Mean metrics of ``policy`` over the seeded evaluation episodes (every declared metric
        that :meth:`summarize` does not add)."""
        raise NotImplementedError

    def summarize(self, results: dict[str, dict], scenario: dict, evaluation: dict) -> dict[str, dict]:
        """Metrics computed across policies (e.g. a change against a reference policy)."""
        return results

    def plot(self, comparison: dict, path: Path) -> None:
        """A figure of a comparison: bars of the table's metrics (a world may draw its paper's)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = [m for m in self.metrics if m.table]
        names = list(comparison["policies"])
        x = np.arange(len(names))
        fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.8), constrained_layout=True, squeeze=False)
        for ax, m in zip(axes[0], shown):
            ax.bar(x, [comparison["policies"][n].get(m.key, np.nan) * m.scale for n in names], color="tab:blue")
            ax.set_title(m.axis_label, fontsize=9)
            ax.set_xticks(x, names, rotation=30, ha="right")
            ax.grid(axis="y", alpha=0.3)
        ev = comparison.get("evaluation", {})
        fig.suptitle(f"{comparison.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes")
        save_figure(fig, path)

    # ---- metrics ------------------------------------------------------------------------------
    def metric(self, key: str) -> Metric:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)

    def progress_text(self, values: Mapping[str, Any], *, training: bool = False, sep: str = ", ") -> str:
        """The progress metrics of ``values``, e.g. ``energy 0.296 mJ/slot, backlog 0.391 s``; for a
        training iteration the ones logged every iteration, ``-`` where one is missing."""
        shown = [m for m in self.metrics if m.progress and (m.train or not training)]
        if not training:
            shown = [m for m in shown if m.key in values]
        return sep.join(f"{m.key} {m.show(values.get(m.key))}" + (f" {m.unit}" if m.unit else "") for m in shown)

    def train_metric_keys(self) -> tuple[str, ...]:
        """What a training iteration reports besides the return (the sweep's choices of metric)."""
        return tuple(m.key for m in self.metrics if m.train)

    def __repr__(self) -> str:
        return f"<world {self.name}: {self.title}>"
