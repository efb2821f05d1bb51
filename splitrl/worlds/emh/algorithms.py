"""RLlib algorithm configs of the EMH-PPO world, its metrics callback and its trained policies.

Algorithms (``algorithm.name``; the world is ``scenario.world: emh``):

* ``emh-ppo`` -- per-device agents, one shared embedding network and one shared per-task critic
  (:mod:`splitrl.worlds.emh.modules`); with ``scenario.mdp: time`` it is the paper's "EMH-PPO
  (time-based)", with ``scenario.partitioning: vertical`` "EMH-PPO (vertical)";
* ``mahppo``  -- per-device hybrid actors, each with its own embedding network, shared critic;
* ``h-ppo``   -- one hybrid PPO agent over the joint action of all devices.
"""

from __future__ import annotations

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import ppo_training
from splitrl.worlds.base import Policy
from splitrl.worlds.emh.actions import action_gates, agent_ids, agent_nvec
from splitrl.worlds.emh.env import EMHJointEnv, EMHMultiAgentEnv, split_joint
from splitrl.worlds.emh.evaluate import episode_metrics
from splitrl.worlds.emh.system import EMHSystem

EPISODE_METRICS = ("latency", "energy", "waiting", "return", "device_share")
MULTI_AGENT = ("emh-ppo", "mahppo")


class EMHMetrics(RLlibCallback):
    """Per-episode EMH metrics (SI, unscaled reward as ``return``) under ``env_runners``."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        infos = episode.get_infos()
        if isinstance(infos, dict):  # multi-agent: every agent carries the same step info
            infos = infos.get("md_0", [])
        steps = [i for i in infos if isinstance(i, dict) and "episode" in i]
        if not steps:
            return
        for key, value in episode_metrics(steps[-1]["episode"]).items():
            if key in EPISODE_METRICS:
                metrics_logger.log_value(key, value, reduce="mean", window=100)


def env_config(cfg: dict) -> dict:
    out = {k: v for k, v in cfg["scenario"].items()}
    out["reward_scale"] = cfg["algorithm"]["reward_scale"]
    out["reward_clip"] = cfg["algorithm"]["reward_clip"]
    if cfg["algorithm"]["name"] == "h-ppo":
        out["action_mode"] = "joint"
    return out


def point_prior(
    nvec: list[int], world: EMHSystem, temperature_s: float | None, window_logit: float | None = None
) -> list[float] | None:
    """Initial logit bias of the discrete branches.  Every partition-point branch (the branches
    with ``num_points`` categories): ``-cost_nominal(s) / T``, a Boltzmann prior over each point's
    nominal per-task cost (:meth:`EMHSystem.nominal_cost`); ``None`` temperature: uniform.  Every
    window-size branch (task MDP; the first entry of each device's block): ``window_logit`` added
    to ``W = W_max``.  ``None`` when neither is set."""
    if temperature_s is None and not window_logit:
        return None
    s = world.scenario
    prior = None
    if temperature_s is not None:
        cost = world.nominal_cost()
        prior = list(-(cost - cost.min()) / temperature_s)
    block = len(agent_nvec(s, world.num_points))
    bias: list[float] = []
    for i, n in enumerate(nvec):
        if s.mdp == "task" and i % block == 0:  # a device's window size
            bias += [0.0] * (n - 1) + [float(window_logit or 0.0)]
        elif n == world.num_points and prior is not None:
            bias += prior
        else:
            bias += [0.0] * n
    return bias


def module_spec(cfg: dict):
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    alg = cfg["algorithm"]
    if alg["name"] == "h-ppo":
        from splitrl.rl.central import CentralPPOModule

        env = EMHJointEnv(env_config(cfg))
        return RLModuleSpec(
            module_class=CentralPPOModule,
            observation_space=env.observation_space,
            action_space=env.action_space,
            model_config={
                "hidden": alg["hidden"],
                "activation": alg["activation"],
                "discrete_nvec": env.nvec,
                "action_gates": action_gates(env.scenario, env.scenario.num_devices) if alg["slot_masking"] else None,
                "init_bias": point_prior(
                    env.nvec, env.world, alg["point_prior_temperature"], alg["window_prior_logit"]
                ),
            },
        )
    from splitrl.worlds.emh.modules import EMHAgentModule, EMHMultiRLModule

    env = EMHMultiAgentEnv(env_config(cfg))
    sc = env.scenario
    mc = {
        "discrete_nvec": env.nvec,
        "embed": alg["embed"],
        "head": alg["hidden"],
        "critic": alg["hidden"],
        "value_outputs": 1 if sc.mdp == "time" else sc.max_window,
        "share_encoder": alg["name"] == "emh-ppo",
        "action_gates": action_gates(sc) if alg["slot_masking"] else None,
        "init_bias": point_prior(env.nvec, env.world, alg["point_prior_temperature"], alg["window_prior_logit"]),
    }
    specs = {
        aid: RLModuleSpec(
            module_class=EMHAgentModule,
            observation_space=env.observation_spaces[aid],
            action_space=env.action_spaces[aid],
            model_config=dict(mc),
        )
        for aid in env.possible_agents
    }
    return MultiRLModuleSpec(multi_rl_module_class=EMHMultiRLModule, rl_module_specs=specs)


def build_algo_config(cfg: dict):
    from ray.rllib.algorithms.ppo import PPOConfig

    alg, res = cfg["algorithm"], cfg["resources"]
    name = alg["name"]
    config = PPOConfig()
    if name == "h-ppo":
        config = config.environment(
            env=EMHJointEnv, env_config=env_config(cfg), normalize_actions=False, clip_actions=False
        )
        config = config.env_runners(gym_env_vectorize_mode="sync")
        from splitrl.worlds.emh.modules import HPPOTorchLearner

        config = config.learners(learner_class=HPPOTorchLearner)
    else:
        from splitrl.rl.env_runners import CountingMultiAgentEnvRunner
        from splitrl.worlds.emh.modules import EMHPPOTorchLearner

        ids = agent_ids(cfg["scenario"]["num_devices"])
        config = (
            config.environment(
                env=EMHMultiAgentEnv, env_config=env_config(cfg), normalize_actions=False, clip_actions=False
            )
            .multi_agent(policies=set(ids), policy_mapping_fn=same_agent_id)
            .learners(learner_class=EMHPPOTorchLearner)
            .env_runners(gym_env_vectorize_mode="sync", env_runner_cls=CountingMultiAgentEnvRunner)
        )
    return (
        config.env_runners(
            num_env_runners=res["num_env_runners"],
            num_envs_per_env_runner=res["num_envs_per_env_runner"],
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0, learner_config_dict={"window_entropy_coeff": alg["window_entropy_coeff"]})
        .rl_module(rl_module_spec=module_spec(cfg))
        .callbacks(EMHMetrics)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
        .training(**ppo_training(alg))
    )


def same_agent_id(agent_id, episode=None, **kwargs):
    """Policy mapping: device ``md_n`` is trained by module ``md_n``."""
    return agent_id


class TrainedEMHPolicy(Policy):
    """A trained EMH agent (multi-agent module or H-PPO's joint module), acting deterministically
    (mode of each categorical, mean power) on the scenario it was trained on."""

    def __init__(self, module, cfg: dict, name: str):
        self.module = module
        self.algorithm = cfg["algorithm"]["name"]
        self.name = name
        # what the agent was built for: its MDP and action space, and how it observes the world
        # (the observation keys change no physics, so every policy still meets the same world)
        from splitrl.worlds.emh import WORLD

        self.scenario_overrides = {k: cfg["scenario"][k] for k in WORLD.policy_scenario_keys if k in cfg["scenario"]}

    def _deterministic(self, sub, obs):
        import torch
        from ray.rllib.core.columns import Columns

        out = sub.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)[None]})
        dist = sub.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
        return dist.to_deterministic().sample()[0].cpu().numpy()

    def act(self, world, obs):
        import torch

        with torch.no_grad():
            if self.algorithm == "h-ppo":
                joint = self._deterministic(self.module, obs)
                return split_joint(world, joint)
            return np.stack(
                [self._deterministic(self.module[aid], obs) for aid in agent_ids(world.scenario.num_devices)]
            )


def load_policy(checkpoint, cfg: dict, name: str) -> TrainedEMHPolicy:
    """The trained agent of a splitrl checkpoint of this world (H-PPO: one module; else one per device)."""
    multi = cfg["algorithm"]["name"] in MULTI_AGENT
    return TrainedEMHPolicy(load_rl_module(checkpoint, None if multi else "default_policy"), cfg, name)
