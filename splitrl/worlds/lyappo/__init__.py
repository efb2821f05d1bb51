"""The LyaPPO world (``scenario.world: lyappo``; paper ``lyappo.txt``).

M XR devices with several DNN services, three coupled queues per service (local computing,
transmission, edge computing), a central PPO agent that picks every service's layer-level
partition point once per period of G slots, and the exact closed-form Lyapunov allocators
(Problems 3-5) inside the env for the per-slot CPU, power and bandwidth.

Modules: :mod:`.scenario` (keys, Table II defaults, validation), :mod:`.system` (physics,
queues, allocators, features), :mod:`.env` (``splitrl/LyaPPO-v0`` and the batched vector env),
:mod:`.baselines`, :mod:`.algorithms` (RLlib configs: LyaPPO, PPO, DDPG-Cov), :mod:`.evaluate`.
"""

from __future__ import annotations

from typing import Literal

from splitrl.core.errors import ConfigError
from splitrl.core.schema import NonNegativeFloat, PositiveFloat, PositiveInt, explain_section, key
from splitrl.rl.ppo import PPOSection, check_minibatch
from splitrl.worlds.base import Algorithm, BaseWorld, EvaluationSection, Metric

_ALG = "splitrl.worlds.lyappo.algorithms"


class LyaPPOAlgorithmSection(PPOSection):
    """``algorithm`` keys of the LyaPPO world: PPO (``lyappo``, ``ppo``; Section V: 2 x 128,
    Adam, lr 3e-4, clip 0.2) and DDPG-Cov."""

    actor_lr: PositiveFloat = key(1.0e-4, "DDPG-Cov actor learning rate")
    critic_lr: PositiveFloat = key(1.0e-3, "DDPG-Cov critic learning rate")
    tau: PositiveFloat = key(0.005, "DDPG-Cov target-network soft-update rate")
    buffer_size: PositiveInt = key(100_000, "DDPG-Cov replay capacity (transitions)")
    exploration_noise: NonNegativeFloat = key(0.2, "DDPG-Cov Gaussian action noise (std, actions in [-1, 1])")
    learning_starts: int = key(1000, "DDPG-Cov transitions before the first update", ge=0)
    ddpg_batch_size: PositiveInt = key(256, "DDPG-Cov replay minibatch")


class LyaPPOEvaluationSection(EvaluationSection):
    episode_periods: PositiveInt | None = key(None, "periods per evaluation episode (null: the scenario's)")
    fixed_partition: Literal["mid", "local", "edge"] | list[int] = key(
        "mid",
        "Fix-Cov: 'mid', 'local', 'edge', or one partition index per service",
        type="'mid' | 'local' | 'edge' | list of int",
    )
    greedy_lookahead_periods: PositiveInt = key(1, "Greedy-Cov: periods simulated per candidate")
    greedy_sweeps: PositiveInt = key(1, "Greedy-Cov: coordinate-search passes per period")
    greedy_terminal_cost: Literal["drain", "none"] = key("drain", "Greedy-Cov: 'drain' (backlog still owed) or 'none'")


class LyaPPOWorld(BaseWorld):
    name = "lyappo"
    title = "LyaPPO"
    doc = "XR devices, three coupled queues per service, central PPO over partition points, exact Lyapunov allocators"
    metrics = (
        Metric(
            "energy",
            "J/slot per device",
            "average device energy",
            unit="mJ/slot",
            scale=1e3,
            short="E",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric(
            "energy_local",
            "J/slot per device",
            "local computing energy",
            unit="mJ/slot",
            scale=1e3,
            short="E_loc",
            train=True,
        ),
        Metric(
            "energy_tx", "J/slot per device", "transmission energy", unit="mJ/slot", scale=1e3, short="E_tx", train=True
        ),
        Metric(
            "backlog",
            "s",
            "average backlog (seconds of work at full capacity, all queues)",
            unit="s",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric("backlog_local", "s", "local computing backlog", unit="s", short="Q_loc"),
        Metric("backlog_tx", "s", "transmission backlog", unit="s", short="Q_tx"),
        Metric("backlog_edge", "s", "edge computing backlog", unit="s", short="Q_edge"),
        Metric("partition", "1", "mean partition point k/K (0 = edge, 1 = local)", fmt=".2f", short="k/K"),
        Metric("latency", "s", "average task latency", unit="s", train=True),
        Metric("throughput", "tasks/s", "finished tasks per second", unit="tasks/s", train=True, table=False),
        Metric("reward", "1", "episode return", fmt=".1f", short="return", higher_is_better=True),
    )
    algorithms = (
        Algorithm(
            "lyappo",
            "LyaPPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "PPO picks the partition points; the exact allocators run inside the env runners",
        ),
        Algorithm(
            "ppo",
            "PPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "the paper's joint PPO baseline: partition points and the period's resources, no allocators",
        ),
        Algorithm(
            "ddpg-cov",
            "DDPG-Cov",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "DDPG whose continuous output is mapped to partition points; allocators for the resources",
        ),
    )
    algorithm_schema = LyaPPOAlgorithmSection
    evaluation_schema = LyaPPOEvaluationSection
    baselines = {
        name: f"splitrl.worlds.lyappo.baselines:{fn}"
        for name, fn in (
            ("Fix-Cov", "fix_cov"),
            ("Random-Cov", "random_cov"),
            ("Local-only", "local_only"),
            ("Edge-only", "edge_only"),
            ("Greedy-Cov", "greedy_cov"),
        )
    }
    evaluation_record_keys = ("episodes", "seed", "episode_periods")
    gym_envs = {"splitrl/LyaPPO-v0": "splitrl.worlds.lyappo.env:LyaPPOEnv"}
    smoke_config = {
        "scenario": {"num_devices": 2, "episode_periods": 50},
        "algorithm": {
            "hidden": [16],
            "train_batch_size": 32,
            "minibatch_size": 16,
            "num_epochs": 1,
            "learning_starts": 8,
            "ddpg_batch_size": 8,
            "buffer_size": 1000,
        },
        "evaluation": {"episodes": 1, "greedy_sweeps": 1},
    }

    def resolve_scenario(self, raw):
        from splitrl.worlds.lyappo.scenario import make_scenario

        return make_scenario(raw).to_dict()

    def explain_scenario(self):
        from splitrl.worlds.lyappo.scenario import LyaPPOScenario

        return explain_section(LyaPPOScenario)

    def check_algorithm(self, algorithm):
        check_minibatch(algorithm)

    def check_evaluation(self, evaluation, scenario):
        from splitrl.worlds.lyappo.scenario import make_scenario

        fp = evaluation["fixed_partition"]
        if isinstance(fp, list):
            sc = make_scenario(scenario, check_load=False)
            if len(fp) != sc.services_per_device:
                raise ConfigError(
                    "evaluation.fixed_partition",
                    f"expected 'mid', 'local', 'edge' or a list of {sc.services_per_device} indices, got {fp!r}",
                )
            for n, (k, model, table) in enumerate(zip(fp, sc.models, sc.tables())):
                top = table.num_points - 1
                if not 0 <= k <= top:
                    raise ConfigError(
                        "evaluation.fixed_partition", f"index {n} ({model}) must be an integer in 0..{top}, got {k!r}"
                    )

    def evaluate(self, policy, scenario, evaluation):
        from splitrl.worlds.lyappo.evaluate import evaluate_policy

        return evaluate_policy(
            policy, scenario, evaluation["episodes"], evaluation["seed"], evaluation.get("episode_periods")
        )

    def plot(self, comparison, path):
        from splitrl.worlds.lyappo.evaluate import plot

        plot(comparison, path)


WORLD = LyaPPOWorld()
