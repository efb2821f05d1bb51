"""The EMH-PPO world on the platform: RLlib configs, metrics, baselines, trained policies, comparison.

Algorithms (``algorithm.name``; the world is ``scenario.world: emh``):

* ``emh-ppo`` -- per-device agents, one shared embedding network and one shared per-task critic
  (:mod:`splitrl.rl_modules.emh`); with ``scenario.mdp: time`` it is the paper's "EMH-PPO
  (time-based)", with ``scenario.partitioning: vertical`` "EMH-PPO (vertical)";
* ``mahppo``  -- per-device hybrid actors, each with its own embedding network, shared critic;
* ``h-ppo``   -- one hybrid PPO agent over the joint action of all devices.

Non-learning baselines: ``Local-only`` (whole model on the device, ``W = W_max``),
``AgileNN`` (a fixed feature split: half the MACs on the device, half of the raw input's bits
sent; channel ``n mod C``, server ``n mod M``, a fixed power -- ``docs/assumptions.md``) and
``Round-robin`` (a coordinated reference schedule in which no two transmitters share a channel) and
``CSI-sharing`` (every device offloads; co-channel devices arrive at equal received power, which
needs the window's gains -- a reference for what channel state information buys).

Comparison metrics (``compare --json``): ``latency`` -- total inference latency of an episode in s
(sum over windows of the slowest device's time, the paper's "total inference latency"),
``energy`` -- device energy per task in J, ``reward`` -- episode return (eq. 8 summed),
``waiting`` -- device idle time per task in s; all averaged over the seeded evaluation episodes,
which fix every device's tasks and distance (``evaluation.fixed_tasks``/``fixed_distance_m``, the
paper's test setting).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from splitrl.envs.emh import EMHWorld, action_gates, agent_ids, agent_nvec, encode_decisions, make_emh_scenario
from splitrl.envs.emh_physics import path_gain
from splitrl.envs.emh_env import EMHJointEnv, EMHMultiAgentEnv, _step, split_joint
from splitrl.platform.config import POLICY_SCENARIO_KEYS

EPISODE_METRICS = ("latency", "energy", "waiting", "return", "device_share")
MULTI_AGENT = ("emh-ppo", "mahppo")


def episode_metrics(totals: dict) -> dict:
    """Metrics of one episode from its totals (the last step info's ``"episode"``)."""
    tasks = totals["tasks"]
    return {"latency": totals["time_s"], "energy": totals["energy_j"] / max(tasks, 1),
            "waiting": totals["idle_s"] / max(tasks, 1), "return": totals["reward"],
            "device_share": totals["device_macs_share"] / max(tasks, 1), "tasks": tasks}


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


def point_prior(nvec: list[int], world: EMHWorld, temperature_s: float | None,
                window_logit: float | None = None) -> list[float] | None:
    """Initial logit bias of the discrete branches.  Every partition-point branch (the branches
    with ``num_points`` categories): ``-cost_nominal(s) / T``, a Boltzmann prior over each point's
    nominal per-task cost (:meth:`EMHWorld.nominal_cost`); ``None`` temperature: uniform.  Every
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
        if s.mdp == "task" and i % block == 0:        # a device's window size
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
        from splitrl.rl_modules.central import CentralPPOModule

        env = EMHJointEnv(env_config(cfg))
        return RLModuleSpec(module_class=CentralPPOModule, observation_space=env.observation_space,
                            action_space=env.action_space,
                            model_config={"hidden": alg["hidden"], "activation": alg["activation"],
                                          "discrete_nvec": env.nvec,
                                          "action_gates": action_gates(env.scenario, env.scenario.num_devices)
                                          if alg["slot_masking"] else None,
                                          "init_bias": point_prior(env.nvec, env.world, alg["point_prior_temperature"],
                                                                   alg["window_prior_logit"])})
    from splitrl.rl_modules.emh import EMHAgentModule, EMHMultiRLModule

    env = EMHMultiAgentEnv(env_config(cfg))
    sc = env.scenario
    mc = {"discrete_nvec": env.nvec, "embed": alg["embed"], "head": alg["hidden"], "critic": alg["hidden"],
          "value_outputs": 1 if sc.mdp == "time" else sc.max_window, "share_encoder": alg["name"] == "emh-ppo",
          "action_gates": action_gates(sc) if alg["slot_masking"] else None,
          "init_bias": point_prior(env.nvec, env.world, alg["point_prior_temperature"], alg["window_prior_logit"])}
    specs = {aid: RLModuleSpec(module_class=EMHAgentModule, observation_space=env.observation_spaces[aid],
                               action_space=env.action_spaces[aid], model_config=dict(mc))
             for aid in env.possible_agents}
    return MultiRLModuleSpec(multi_rl_module_class=EMHMultiRLModule, rl_module_specs=specs)


def build_algo_config(cfg: dict):
    from ray.rllib.algorithms.ppo import PPOConfig

    from splitrl.platform.algorithms import ppo_training

    alg, res = cfg["algorithm"], cfg["resources"]
    name = alg["name"]
    config = PPOConfig()
    if name == "h-ppo":
        config = config.environment(env=EMHJointEnv, env_config=env_config(cfg), normalize_actions=False,
                                    clip_actions=False)
        config = config.env_runners(gym_env_vectorize_mode="sync")
        from splitrl.rl_modules.emh import HPPOTorchLearner

        config = config.learners(learner_class=HPPOTorchLearner)
    else:
        from splitrl.rl_modules.emh import EMHPPOTorchLearner

        ids = agent_ids(cfg["scenario"]["num_devices"])
        config = (config.environment(env=EMHMultiAgentEnv, env_config=env_config(cfg), normalize_actions=False,
                                     clip_actions=False)
                  .multi_agent(policies=set(ids), policy_mapping_fn=_same_id)
                  .learners(learner_class=EMHPPOTorchLearner)
                  .env_runners(gym_env_vectorize_mode="sync"))
    return (
        config.env_runners(num_env_runners=res["num_env_runners"], num_envs_per_env_runner=res["num_envs_per_env_runner"],
                           num_cpus_per_env_runner=1)
        .learners(num_learners=0, learner_config_dict={"window_entropy_coeff": alg["window_entropy_coeff"]})
        .rl_module(rl_module_spec=module_spec(cfg))
        .callbacks(EMHMetrics)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
        .training(**ppo_training(alg))
    )


def _same_id(agent_id, episode=None, **kwargs):
    return agent_id


# ---- policies ----------------------------------------------------------------------------------------
class EMHPolicy:
    """Decides every device's flat action ``(N, dim)`` from the world and the global observation."""

    name = "policy"
    scenario_overrides: dict = {}

    def reset(self, world: EMHWorld, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, world: EMHWorld, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class LocalOnly(EMHPolicy):
    """The whole model on every device (``s = S``), full windows; nothing is sent."""

    name = "Local-only"

    def act(self, world, obs):
        s = world.scenario
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, world.num_points - 1, 0, 0, s.p_limit_w)


class AgileNN(EMHPolicy):
    """AgileNN-style fixed feature split (ratio 0.5): half the MACs on the device, half of the raw
    input's bits sent; device ``n`` on channel ``n mod C`` and server ``n mod M`` at ``power_frac``
    of ``P_limit``, full windows.  Evaluated on the operator-grained world with one extra virtual
    point (the split is not a cut of the original model)."""

    name = "AgileNN"

    def __init__(self, power_frac: float = 0.1):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        n = np.arange(s.num_devices)
        shape = (s.num_devices,) if s.mdp == "time" else (s.num_devices, 1)
        point = world.add_virtual_point("agilenn", 0.5, 0.5 * world.tx_bits[0])
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, point, (n % s.num_channels).reshape(shape),
                                (n % s.num_servers).reshape(shape), self.power_frac * s.p_limit_w)


class RoundRobin(EMHPolicy):
    """A hand-made coordinated schedule (a reference, not from the paper): at task position ``x``
    of a window (``time``: slot ``t``) device ``n`` has rank ``r = (n + x) mod N``; the ``C``
    lowest ranks send the raw input (``s = 1``) on channel ``r`` to server ``r mod M`` at
    ``power_frac * P_limit``, so no two transmitters share a channel; the others run locally."""

    name = "Round-robin"

    def __init__(self, power_frac: float = 0.02):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        N = s.num_devices
        x = np.arange(s.max_window)[None, :] if s.mdp == "task" else world.steps
        r = (np.arange(N)[:, None] + x) % N if s.mdp == "task" else (np.arange(N) + x) % N
        off = r < s.num_channels
        point = np.where(off, 0, world.num_points - 1)
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, point, np.where(off, r, 0), np.where(off, r % s.num_servers, 0),
                                self.power_frac * s.p_limit_w)


class CSISharing(EMHPolicy):
    """A hand-made schedule that uses the window's gains (a reference, not from the paper): every
    device sends the raw input (``s = 1``); at task position ``x`` (``time``: slot ``t``) device
    ``n`` has rank ``r = (n + x) mod N`` and uses channel ``r mod C`` and server ``r mod M``; on
    each channel the device with the weakest gain sends at ``power_frac * P_limit`` and the others
    at the power that makes their received power equal to it (eq. 1: SINR 1 for a pair)."""

    name = "CSI-sharing"

    def __init__(self, power_frac: float = 0.2):
        self.power_frac = power_frac

    def act(self, world, obs):
        s = world.scenario
        N = s.num_devices
        x = np.arange(s.max_window)[None, :] if s.mdp == "task" else np.array([[world.steps]])
        r = (np.arange(N)[:, None] + x) % N                                   # (N, X)
        channel, server = r % s.num_channels, r % s.num_servers
        gain = path_gain(world.distance, world.shadow_db, ref_distance_m=s.ref_distance_m,
                         exponent=s.path_loss_exponent)[:, None]
        same = channel[:, None, :] == channel[None, :, :]                     # (N, N, X)
        weakest = np.where(same, gain[None, :, :], np.inf).min(axis=1)        # per device and position
        power = self.power_frac * s.p_limit_w * weakest / gain
        if s.mdp == "time":
            channel, server, power = channel[:, 0], server[:, 0], power[:, 0]
        window = s.max_window if s.mdp == "task" else None
        return encode_decisions(world, window, 0, channel, server, power)


def make_emh_baselines(evaluation: dict) -> list[EMHPolicy]:
    table = {"Local-only": LocalOnly, "AgileNN": AgileNN, "Round-robin": RoundRobin, "CSI-sharing": CSISharing}
    return [table[name]() for name in evaluation["baselines"]]


class TrainedEMHPolicy(EMHPolicy):
    """A trained EMH agent (multi-agent module or H-PPO's joint module), acting deterministically
    (mode of each categorical, mean power) on the scenario it was trained on."""

    def __init__(self, module, cfg: dict, name: str):
        self.module = module
        self.algorithm = cfg["algorithm"]["name"]
        self.name = name
        # what the agent was built for: its MDP and action space, and how it observes the world
        # (the observation keys change no physics, so every policy still meets the same world)
        self.scenario_overrides = {k: cfg["scenario"][k] for k in POLICY_SCENARIO_KEYS if k in cfg["scenario"]}

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
            return np.stack([self._deterministic(self.module[aid], obs)
                             for aid in agent_ids(world.scenario.num_devices)])


# ---- evaluation ----------------------------------------------------------------------------------------
def evaluate_emh_policy(policy: EMHPolicy, scenario: dict, evaluation: dict) -> dict:
    """Average metrics of ``policy`` over the seeded evaluation episodes (seeds ``seed + i``)."""
    sc = {**scenario, **policy.scenario_overrides, "fixed_tasks": evaluation["fixed_tasks"],
          "fixed_distance_m": evaluation["fixed_distance_m"]}
    world = EMHWorld(make_emh_scenario(sc))
    per_episode = []
    for i in range(evaluation["episodes"]):
        seed = evaluation["seed"] + i
        world.reset(np.random.default_rng(seed))
        policy.reset(world, seed)
        info = {}
        while not world.done and world.steps < world.scenario.max_steps:
            info = _step(world, policy.act(world, world.observation()))
        per_episode.append(episode_metrics(info["episode"]))
        per_episode[-1]["steps"] = world.steps
    out = {k: float(np.mean([m[k] for m in per_episode])) for k in per_episode[0]}
    out["reward"] = out.pop("return")
    for key, src in (("reward", "return"), ("latency", "latency"), ("energy", "energy")):
        out[f"{key}_std"] = float(np.std([m[src] for m in per_episode]))  # spread over episodes
    out["episodes"] = evaluation["episodes"]
    return out


COLUMNS = {"latency": ("latency [s]", "{:.3f}"), "energy": ("energy [J/task]", "{:.4f}"),
           "reward": ("reward", "{:.2f}"), "waiting": ("waiting [s/task]", "{:.4f}"),
           "device_share": ("MACs on device", "{:.2f}"), "latency_vs_local": ("latency vs local", "{:+.1%}"),
           "energy_vs_local": ("energy vs local", "{:+.1%}")}


def compare_emh(policies: Iterable[EMHPolicy], scenario: dict, evaluation: dict,
                progress: Callable[[str], None] | None = None) -> dict:
    results: dict[str, dict[str, Any]] = {}
    for policy in policies:
        t0 = time.perf_counter()
        m = evaluate_emh_policy(policy, scenario, evaluation)
        m["wall_s"] = time.perf_counter() - t0
        results[policy.name] = m
        if progress:
            progress(f"{policy.name}: latency {m['latency']:.3f} s, energy {m['energy']:.4f} J/task, "
                     f"reward {m['reward']:.2f} ({m['wall_s']:.1f} s)")
    local = results.get("Local-only") or evaluate_emh_policy(LocalOnly(), scenario, evaluation)
    for m in results.values():
        m["latency_vs_local"] = m["latency"] / local["latency"] - 1.0
        m["energy_vs_local"] = m["energy"] / local["energy"] - 1.0
    return {"policies": results, "scenario": scenario,
            "evaluation": {k: evaluation[k] for k in ("episodes", "seed", "fixed_tasks", "fixed_distance_m")}}


def format_emh_table(result: dict) -> str:
    rows = [["policy"] + [h for h, _ in COLUMNS.values()]]
    for name, m in result["policies"].items():
        rows.append([name] + [fmt.format(m[k]) for k, (_, fmt) in COLUMNS.items()])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_emh(result: dict, path) -> None:
    """Bar charts in the shape of the paper's Fig. 6: reward, total latency, energy, waiting."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["policies"])
    pol = result["policies"]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 4, figsize=(4.0 * 4, 4.0), constrained_layout=True)
    for ax, (key, label, scale) in zip(axes, (("reward", "(a) average reward", 1.0),
                                              ("latency", "(b) total inference latency [s]", 1.0),
                                              ("energy", "(c) energy per task [mJ]", 1e3),
                                              ("waiting", "(d) waiting per task [ms]", 1e3))):
        ax.bar(x, [pol[n][key] * scale for n in names], color="tab:blue")
        ax.set_title(label)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    ev = result.get("evaluation", {})
    fig.suptitle(f"{result.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes, "
                 f"{ev.get('fixed_tasks', '?')} tasks per device")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
