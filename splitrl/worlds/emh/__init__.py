"""The EMH-PPO world (``scenario.world: emh``; paper ``emh-ppo.md``).

N devices, M MEC servers and C shared channels with co-channel interference, operator-grained
partitioning of DAG-structured DNNs (Algorithm 1) or the layer chain, the task-aware multi-agent
MDP (task windows) or a time-based one, and per-device RLlib agents with a shared embedding
network and a shared critic (EMH-PPO), besides MAHPPO and H-PPO.

Modules: :mod:`.scenario` (keys, Table III defaults), :mod:`.physics` (eqs. 1-3),
:mod:`.system` (the vectorised simulator), :mod:`.actions` (hybrid action layout), :mod:`.env`
(RLlib ``MultiAgentEnv`` ``splitrl/EMH-v0``, PettingZoo ``ParallelEnv``, joint env
``splitrl/EMH-Joint-v0``), :mod:`.baselines`, :mod:`.modules` (RLModules and learners),
:mod:`.algorithms` (RLlib configs), :mod:`.evaluate`, :mod:`.latency` (the timed server L0).
"""

from __future__ import annotations

from typing import Literal

from splitrl.core.schema import PositiveFloat, PositiveInt, Schedulable, explain_section, key
from splitrl.rl.ppo import PPOSection, check_minibatch
from splitrl.worlds.base import Algorithm, BaseWorld, EvaluationSection, Metric

_ALG = "splitrl.worlds.emh.algorithms"


class EMHAlgorithmSection(PPOSection):
    """``algorithm`` keys of the EMH-PPO world (Section V, Table III): embedding 512-256 (GELU);
    agent heads and critic 256-128-64 (ReLU); Adam, lr 1e-4, batch 256, gamma 0.95, clip 0.2."""

    hidden: list[PositiveInt] = key([256, 128, 64], "agent heads and critic MLP widths", min_length=1)
    embed: list[PositiveInt] = key([512, 256], "EMH-PPO / MAHPPO: embedding network widths (GELU)", min_length=1)
    activation: Literal["tanh", "relu"] = key("relu", "activation of the heads and critic")
    lr: PositiveFloat = key(1.0e-4, "Adam learning rate")
    gamma: PositiveFloat = key(0.95, "discount", le=1)
    train_batch_size: PositiveInt = key(2048, "env steps (windows or slots) per training iteration")
    minibatch_size: PositiveInt = key(256, "SGD minibatch (env steps)")
    reward_scale: PositiveFloat = key(0.1, "rewards seen by the learner are multiplied by this")
    grad_clip: PositiveFloat | None = key(
        None,
        "global gradient-norm clip per module (null: Adam alone; a clip "
        "would let the critic's gradient squash the actor's)",
    )
    window_entropy_coeff: Schedulable = key(
        0.0,
        "task MDP: entropy bonus on the window-size entries alone (or a schedule, as entropy_coeff)",
        type="float >= 0 | schedule",
    )
    reward_clip: PositiveFloat | None = key(
        20.0, "costs above this are compressed for the learner, -c log(1 + cost/c) (null: raw reward)"
    )
    point_prior_temperature: PositiveFloat | None = key(
        0.3,
        "initial partition-point logits -cost_nominal/T (a Boltzmann prior over a nominal per-task eq. 8 "
        "cost; null: uniform)",
    )
    window_prior_logit: float | None = key(2.0, "task MDP: added to the initial logit of W = W_max (null: none)")
    slot_masking: bool = key(
        True, "task MDP: task slots beyond the chosen window leave the log-probs, entropy and KL (they do not act)"
    )


class EMHEvaluationSection(EvaluationSection):
    fixed_tasks: PositiveInt | None = key(50, "tasks per device in evaluation episodes (null: Poisson, as in training)")
    fixed_distance_m: PositiveFloat | None = key(
        50.0, "device distance in evaluation episodes (null: drawn at every decision, as in training)", unit="m"
    )


class EMHWorld(BaseWorld):
    name = "emh"
    title = "EMH-PPO"
    doc = "multi-device, multi-server, operator-grained DAG partitioning, task-aware multi-agent MDP"
    metrics = (
        Metric("latency", "s", "total inference latency per episode", unit="s", train=True, progress=True, plot=True),
        Metric(
            "energy",
            "J/task",
            "device energy per task",
            unit="mJ/task",
            scale=1e3,
            fmt=".2f",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric("reward", "1", "episode return (eq. 8 summed)", fmt=".2f", higher_is_better=True, plot=True),
        Metric(
            "waiting",
            "s/task",
            "device idle time per task",
            unit="ms/task",
            scale=1e3,
            fmt=".1f",
            train=True,
            progress=True,
        ),
        Metric("device_share", "1", "share of the MACs run on devices", fmt=".2f", short="MACs on device", train=True),
        Metric("latency_vs_local", "1", "latency change against Local-only", fmt="+.1%", short="latency vs local"),
        Metric("energy_vs_local", "1", "energy change against Local-only", fmt="+.1%", short="energy vs local"),
    )
    algorithms = (
        Algorithm(
            "emh-ppo",
            "EMH-PPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "per-device agents, one shared embedding network and one shared per-task critic",
        ),
        Algorithm(
            "mahppo",
            "MAHPPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "per-device hybrid actors, each with its own embedding network, shared critic",
        ),
        Algorithm(
            "h-ppo",
            "H-PPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "one hybrid PPO agent over the joint action of all devices",
        ),
    )
    algorithm_schema = EMHAlgorithmSection
    evaluation_schema = EMHEvaluationSection
    baselines = {
        name: f"splitrl.worlds.emh.baselines:{fn}"
        for name, fn in (
            ("Local-only", "local_only"),
            ("AgileNN", "agilenn"),
            ("Round-robin", "round_robin"),
            ("CSI-sharing", "csi_sharing"),
        )
    }
    #: a trained agent brings its MDP and action space and how it observes the world
    policy_scenario_keys = ("mdp", "partitioning", "slot_ms", "queue_obs_cap", "observe_gain")
    evaluation_record_keys = ("episodes", "seed", "fixed_tasks", "fixed_distance_m")
    gym_envs = {"splitrl/EMH-Joint-v0": "splitrl.worlds.emh.env:EMHJointEnv"}
    rllib_envs = {"splitrl/EMH-v0": "splitrl.worlds.emh.env:EMHMultiAgentEnv"}
    pettingzoo_envs = {"splitrl/EMH-v0": "splitrl.worlds.emh.env:parallel_env"}
    smoke_config = {
        "scenario": {"l0_s": 0.0086, "task_mean": 4, "num_devices": 2},
        "algorithm": {"embed": [16], "hidden": [16], "train_batch_size": 32, "minibatch_size": 16, "num_epochs": 1},
        "evaluation": {"episodes": 1, "fixed_tasks": 4},
    }
    return_metric = "return"  # the team return (RLlib would sum the agents')
    learner_min_keys = ("window_entropy",)

    def resolve_scenario(self, raw):
        from splitrl.worlds.emh.scenario import make_emh_scenario

        return make_emh_scenario(raw, resolve_l0=True).to_dict()

    def explain_scenario(self):
        from splitrl.worlds.emh.scenario import EMHScenario

        return explain_section(EMHScenario)

    def check_algorithm(self, algorithm):
        check_minibatch(algorithm)

    def policy_name(self, cfg):
        """``EMH-PPO (time-based)``, ``... (vertical)``, ``... (queue cap 50)``, ``... (no CSI)``."""
        name = super().policy_name(cfg)
        sc = cfg["scenario"]
        variants = []
        if sc.get("mdp") == "time":
            variants.append("time-based")
        if sc.get("partitioning") == "vertical":
            variants.append("vertical")
        if sc.get("queue_obs_cap") is not None:
            variants.append(f"queue cap {sc['queue_obs_cap']:g}")
        if sc.get("observe_gain") is False:
            variants.append("no CSI")
        return f"{name} ({', '.join(variants)})" if variants else name

    def evaluate(self, policy, scenario, evaluation):
        from splitrl.worlds.emh.evaluate import evaluate_emh_policy

        return evaluate_emh_policy(policy, scenario, evaluation)

    def summarize(self, results, scenario, evaluation):
        from splitrl.worlds.emh.evaluate import summarize

        return summarize(results, scenario, evaluation)

    def plot(self, comparison, path):
        from splitrl.worlds.emh.evaluate import plot_emh

        plot_emh(comparison, path)


WORLD = EMHWorld()
