"""Old import paths, kept importable for checkpoints and run directories written before the worlds
refactor (RLlib pickles classes and functions by import path: ``splitrl.envs.lyappo.LyaPPOVectorEnv``,
``splitrl.platform.emh.EMHMetrics``, ``splitrl.rl_modules.emh.EMHMultiRLModule``, ...).

:func:`install` (run by ``import splitrl``) adds a finder at the end of ``sys.meta_path``: a module
in :data:`MOVED` that no longer exists on disk is served as a stand-in whose attributes resolve to
their new homes (``MOVED[old][name]`` or, for any other name, ``old``'s main successor).  Real
modules always win, so the stand-ins never shadow code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

_W = "splitrl.worlds"
#: old module -> (main successor, {name: "new.module:name" for names that went elsewhere})
MOVED: dict[str, tuple[str, dict[str, str]]] = {
    "splitrl.envs": ("splitrl.worlds.lyappo.env", {}),
    "splitrl.envs.lyappo": (
        f"{_W}.lyappo.env",
        {"LyaPPOSystem": f"{_W}.lyappo.system:LyaPPOSystem", "LyaPPOFeatures": f"{_W}.lyappo.system:LyaPPOFeatures"},
    ),
    "splitrl.envs.scenario": (f"{_W}.lyappo.scenario", {"ScenarioError": "splitrl.core.errors:ScenarioError"}),
    "splitrl.envs.queues": (f"{_W}.lyappo.queues", {}),
    "splitrl.envs.allocators": (f"{_W}.lyappo.allocators", {}),
    "splitrl.envs.channel": ("splitrl.physics.channel", {}),
    "splitrl.envs.energy": (f"{_W}.lyappo.energy", {}),
    "splitrl.envs.dnn": ("splitrl.dnn", {}),
    "splitrl.envs.dag": ("splitrl.dnn.dag", {}),
    "splitrl.envs.latency": (f"{_W}.emh.latency", {}),
    "splitrl.envs.emh_physics": (f"{_W}.emh.physics", {}),
    "splitrl.envs.emh_env": (f"{_W}.emh.env", {}),
    "splitrl.envs.emh": (
        f"{_W}.emh.system",
        {
            "EMHWorld": f"{_W}.emh.system:EMHSystem",
            **{n: f"{_W}.emh.scenario:{n}" for n in ("EMHScenario", "make_emh_scenario", "EMH_KEYS")},
            **{
                n: f"{_W}.emh.actions:{n}"
                for n in (
                    "agent_nvec",
                    "agent_num_continuous",
                    "action_gates",
                    "agent_action_space",
                    "observation_space",
                    "decode_actions",
                    "encode_decisions",
                    "agent_ids",
                )
            },
        },
    ),
    "splitrl.rl_modules": ("splitrl.rl", {}),
    "splitrl.rl_modules.central": ("splitrl.rl.central", {}),
    "splitrl.rl_modules.distributions": ("splitrl.rl.distributions", {}),
    "splitrl.rl_modules.schedules": ("splitrl.rl.schedules", {}),
    "splitrl.rl_modules.ddpg": (f"{_W}.lyappo.ddpg", {}),
    "splitrl.rl_modules.emh": (f"{_W}.emh.modules", {}),
    "splitrl.platform.algorithms": (f"{_W}.lyappo.algorithms", {}),
    "splitrl.platform.baselines": (f"{_W}.lyappo.baselines", {}),
    "splitrl.platform.policies": (f"{_W}.lyappo.algorithms", {}),
    "splitrl.platform.emh": (
        f"{_W}.emh.algorithms",
        {
            "_same_id": f"{_W}.emh.algorithms:same_agent_id",
            **{n: f"{_W}.emh.baselines:{n}" for n in ("EMHPolicy", "LocalOnly", "AgileNN", "RoundRobin", "CSISharing")},
            **{n: f"{_W}.emh.evaluate:{n}" for n in ("evaluate_emh_policy", "plot_emh")},
        },
    ),
}


#: Defaults of the ``algorithm`` and ``evaluation`` keys that the platform declared for every world
#: before the worlds refactor (a run directory's ``config.yaml`` holds them all, also the other
#: world's, where they had no effect).  :meth:`BaseWorld.upgrade_config` drops such a key from a
#: config of a world that does not have it when it holds this value.
LEGACY_DEFAULTS: dict[str, dict] = {
    "algorithm": {
        "hidden": [128, 128],
        "embed": [512, 256],
        "activation": "tanh",
        "lr": 3.0e-4,
        "gamma": 0.99,
        "lambda": 0.95,
        "clip": 0.2,
        "entropy_coeff": 0.0,
        "window_entropy_coeff": 0.0,
        "vf_loss_coeff": 0.5,
        "vf_clip": 1.0e6,
        "grad_clip": 100.0,
        "reward_scale": 0.01,
        "point_prior_temperature": None,
        "window_prior_logit": None,
        "slot_masking": False,
        "reward_clip": None,
        "train_batch_size": 4000,
        "minibatch_size": 128,
        "num_epochs": 10,
        "actor_lr": 1.0e-4,
        "critic_lr": 1.0e-3,
        "tau": 0.005,
        "buffer_size": 100_000,
        "exploration_noise": 0.2,
        "learning_starts": 1000,
        "ddpg_batch_size": 256,
        "seed": 0,
    },
    "evaluation": {
        "episodes": 5,
        "seed": 10_000,
        "episode_periods": None,
        "baselines": None,
        "fixed_tasks": 50,
        "fixed_distance_m": 50.0,
        "fixed_partition": "mid",
        "greedy_lookahead_periods": 1,
        "greedy_sweeps": 1,
        "greedy_terminal_cost": "drain",
    },
}


def _stand_in(old: str) -> types.ModuleType:
    main, names = MOVED[old]
    module = types.ModuleType(old, f"Moved: see {main} (a stand-in kept by splitrl.compat).")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        target = names.get(name)
        if target is not None:
            mod, _, attr = target.partition(":")
            return getattr(importlib.import_module(mod), attr)
        return getattr(importlib.import_module(main), name)

    module.__getattr__ = __getattr__
    module.__path__ = []  # a package, so that old submodules (splitrl.envs.lyappo) import too
    return module


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _stand_in(spec.name)

    def exec_module(self, module):
        pass


def install() -> None:
    """Add the finder for old import paths (idempotent)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
