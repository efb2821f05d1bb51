"""The LyMDO world (``scenario.world: lymdo``; paper ``lymdo.md``).

N UEs run layer-partitioned DNNs with one edge server: per slot an M/D/1 delay on the UE, the
FDMA uplink and the edge VM, energy and memory costs with long-term budgets kept by virtual
queues (eqs. 8-9), and a PPO agent that picks every UE's partition point while the exact
allocators P3-P5 share the UE CPU, the edge CPU and the bandwidth inside the env.

Modules: :mod:`.scenario` (keys, Table I defaults, layer tables), :mod:`.allocators` (P3-P5),
:mod:`.system` (the batched simulator), :mod:`.env` (``splitrl/LyMDO-v0`` and the vector env),
:mod:`.baselines`, :mod:`.algorithms` (RLlib: LyMDO, the joint PPO), :mod:`.evaluate`.
"""

from __future__ import annotations

from typing import Literal

from splitrl.core.errors import ConfigError
from splitrl.core.schema import Float, PositiveFloat, PositiveInt, explain_section, key
from splitrl.rl.ppo import PPOSection, check_minibatch
from splitrl.worlds.base import Algorithm, BaseWorld, EvaluationSection, Metric

_ALG = "splitrl.worlds.lymdo.algorithms"


class LyMDOAlgorithmSection(PPOSection):
    """``algorithm`` keys of the LyMDO world (Sec. V-A: actor and critic 128-64, Adam 3e-4, clip 0.2;
    2000 episodes x 200 slots; the rest ``docs/assumptions/lymdo.md``)."""

    hidden: list[PositiveInt] = key([128, 64], "actor and critic MLP widths", min_length=1)
    activation: Literal["tanh", "relu"] = key("tanh", "activation of the MLPs")
    gamma: PositiveFloat = key(
        0.9, "discount (not in the paper; 0.99 learns far slower, docs/assumptions/lymdo.md)", le=1
    )
    lambda_: float = key(0.95, "GAE lambda (1: eq. 16's Monte Carlo advantage)", ge=0, le=1, alias="lambda")
    train_batch_size: PositiveInt = key(3200, "env steps (slots) per training iteration")
    minibatch_size: PositiveInt = key(128, "SGD minibatch (slots)")
    reward_scale: PositiveFloat = key(0.1, "rewards seen by the learner are multiplied by this")
    init_log_std: Float = key(-0.5, "initial log-std of the Gaussian action head")


class LyMDOEvaluationSection(EvaluationSection):
    arrival_rates: list[PositiveFloat] = key(
        [0.5, 1.0, 1.5, 2.0, 2.5],
        "the constant arrival rates every policy is evaluated at (Fig. 4)",
        unit="tasks/s",
        min_length=1,
    )
    greedy_sweeps: PositiveInt = key(3, "Greedy-DPP: coordinate-descent passes over the UEs per slot")
    slots_per_episode: PositiveInt | None = key(
        None,
        "slots per evaluation episode (null: scenario.slots_per_episode); the long-term budgets "
        "need long horizons, as the virtual queues pay back their start-up transient over time",
    )


class LyMDOWorld(BaseWorld):
    name = "lymdo"
    title = "LyMDO"
    doc = "N UEs, one edge server, M/D/1 delays, energy and memory virtual queues, PPO over partition points"
    metrics = (
        Metric(
            "delay",
            "s",
            "average E2E delay per UE and slot",
            unit="ms",
            scale=1e3,
            fmt=".1f",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric(
            "delay_task_weighted",
            "s",
            "E2E delay per task (weighted by the arrival rates)",
            unit="ms",
            scale=1e3,
            fmt=".1f",
            short="delay/task",
        ),
        Metric(
            "energy",
            "J/slot per UE",
            "energy per UE and slot",
            unit="mJ/slot",
            scale=1e3,
            fmt=".2f",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric(
            "memory", "B per UE", "memory cost per UE (eq. 6)", unit="MB", scale=1e-6, fmt=".1f", train=True, plot=True
        ),
        Metric(
            "energy_queue",
            "1",
            "energy virtual queue Q (time mean, queue units)",
            fmt=".2f",
            short="Q",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric(
            "memory_queue", "1", "memory virtual queue W (time mean, queue units)", fmt=".3f", short="W", train=True
        ),
        Metric(
            "energy_vs_budget",
            "1",
            "largest UE energy over its budget, minus 1 (<= 0: within)",
            fmt="+.1%",
            short="E vs budget",
        ),
        Metric(
            "memory_vs_budget",
            "1",
            "largest UE memory over its budget, minus 1 (<= 0: within)",
            fmt="+.1%",
            short="C vs budget",
        ),
        Metric("reward", "1", "episode return (eq. 14 summed)", fmt=".1f", higher_is_better=True),
    )
    algorithms = (
        Algorithm(
            "lymdo",
            "LyMDO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "PPO picks the partition points; the exact allocators P3-P5 run inside the env runners",
        ),
        Algorithm(
            "ppo",
            "PPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "the paper's joint baseline: a 4N-dimensional action, no convex solver",
        ),
    )
    algorithm_schema = LyMDOAlgorithmSection
    evaluation_schema = LyMDOEvaluationSection
    baselines = {
        name: f"splitrl.worlds.lymdo.baselines:{fn}"
        for name, fn in (
            ("Local", "local"),
            ("Edge", "edge"),
            ("Random", "random_partition"),
            ("Greedy-DPP", "greedy_dpp"),
        )
    }
    # the mapping travels with the agent; the training rate process and horizon do not enter an
    # evaluation (constant rates, the compare config's horizon), but arrival_rate_max_per_s scales
    # the observation and must match
    policy_scenario_keys = ("partition_mapping", "arrival_process", "arrival_rate_min_per_s", "slots_per_episode")
    evaluation_record_keys = ("episodes", "seed", "arrival_rates", "slots_per_episode")
    gym_envs = {"splitrl/LyMDO-v0": "splitrl.worlds.lymdo.env:LyMDOEnv"}
    smoke_config = {
        "scenario": {"slots_per_episode": 10},
        "algorithm": {"hidden": [16], "train_batch_size": 40, "minibatch_size": 20, "num_epochs": 1},
        "evaluation": {"episodes": 1, "arrival_rates": [1.0, 2.5], "greedy_sweeps": 1},
    }

    def resolve_scenario(self, raw):
        from splitrl.worlds.lymdo.scenario import make_lymdo_scenario

        return make_lymdo_scenario(raw).to_dict()

    def explain_scenario(self):
        from splitrl.worlds.lymdo.scenario import LyMDOScenario

        return explain_section(LyMDOScenario)

    def check_algorithm(self, algorithm):
        check_minibatch(algorithm)

    def check_evaluation(self, evaluation, scenario):
        from splitrl.worlds.lymdo.scenario import check_stability, make_lymdo_scenario

        sc = make_lymdo_scenario(scenario)
        for rate in evaluation["arrival_rates"]:
            try:
                check_stability(sc, rate, "evaluation.arrival_rates")
            except ConfigError as exc:
                raise ConfigError("evaluation.arrival_rates", exc.message) from None

    def evaluate(self, policy, scenario, evaluation):
        from splitrl.worlds.lymdo.evaluate import evaluate_policy

        return evaluate_policy(policy, scenario, evaluation)

    def plot(self, comparison, path):
        from splitrl.worlds.lymdo.evaluate import plot

        plot(comparison, path)


WORLD = LyMDOWorld()
