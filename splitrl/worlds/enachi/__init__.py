"""The ENACHI world (``scenario.world: enachi``; paper ``enachi.txt``, design notes
``../shared/specs/enachi.md``).

N devices run ResNet-50 split inference against one edge server with batched execution at a
common start; per frame (a task with a hard deadline) Stage I picks the split, the FDMA band and a
reference power under a long-term energy budget kept by a virtual queue; per 1 ms slot Stage II
tracks the reference with a virtual power queue, sends feature maps in importance order and lets
the server's uncertainty estimate stop a device early.  Accuracy comes from a real CNN on
scikit-learn's digits (``accuracy_source: digits``) or the paper-level surrogate.

Modules: :mod:`.accuracy` (surrogate, the shipped table), :mod:`.digits` (its builder),
:mod:`.physics`, :mod:`.allocators` (Lemma 2, Algorithm 1, the exact allocator, eq. 25),
:mod:`.planner` (split search), :mod:`.scenario`, :mod:`.system`, :mod:`.env`, :mod:`.baselines`,
:mod:`.algorithms`, :mod:`.evaluate`, :mod:`.commands` (``splitrl enachi-data build``).
"""

from __future__ import annotations

from splitrl.core.schema import NonNegativeFloat, PositiveFloat, PositiveInt, explain_section, key
from splitrl.rl.ppo import PPOSection, check_minibatch
from splitrl.worlds.base import Algorithm, BaseWorld, EvaluationSection, Metric

_ALG = "splitrl.worlds.enachi.algorithms"
_BASE = "splitrl.worlds.enachi.baselines"


class ENACHIAlgorithmSection(PPOSection):
    """``algorithm`` keys of the ENACHI world's learner (not in the paper: ENACHI does not learn)."""

    hidden: list[PositiveInt] = key([128, 128], "actor and critic MLP widths", min_length=1)
    gamma: PositiveFloat = key(0.9, "discount", le=1)
    train_batch_size: PositiveInt = key(3200, "env steps (frames) per training iteration")
    minibatch_size: PositiveInt = key(128, "SGD minibatch (frames)")
    reward_scale: PositiveFloat = key(1.0, "rewards seen by the learner are multiplied by this")


class ENACHIEvaluationSection(EvaluationSection):
    frames: PositiveInt | None = key(None, "frames per evaluation episode (null: scenario.episode_frames)")
    enachi_sweeps: PositiveInt = key(1, "ENACHI: coordinate-ascent passes of the split search per frame")
    sc_cao_energy_price: NonNegativeFloat = key(
        0.02, "SC-CAO: the fixed energy price mu replacing Q / V (ENACHI's steady-state mean)", unit="1/J"
    )
    effect_dnn_v: PositiveFloat = key(1.0, "EFFECT-DNN: V_E, the weight of the energy against its latency queue")


class ENACHIWorld(BaseWorld):
    name = "enachi"
    title = "ENACHI"
    doc = (
        "N devices, ResNet-50 split inference with progressive feature transmission, two-tier Lyapunov "
        "scheduling (per frame and per slot), accuracy from a real CNN on digits"
    )
    metrics = (
        Metric(
            "accuracy",
            "1",
            "fraction of tasks correct (misses count 0)",
            fmt=".4f",
            train=True,
            progress=True,
            plot=True,
            higher_is_better=True,
        ),
        Metric(
            "energy",
            "J/frame per device",
            "energy per device and frame",
            unit="J/frame",
            fmt=".4f",
            train=True,
            progress=True,
            plot=True,
        ),
        Metric(
            "energy_local", "J/frame per device", "local computing energy", unit="J/frame", fmt=".4f", short="E local"
        ),
        Metric("energy_tx", "J/frame per device", "transmission energy", unit="J/frame", fmt=".4f", short="E tx"),
        Metric(
            "energy_vs_budget",
            "1",
            "largest device energy over its budget, minus 1 (<= 0: within)",
            fmt="+.1%",
            short="E vs budget",
        ),
        Metric("miss_rate", "1", "tasks cut at the deadline", fmt=".3f", short="miss", train=True),
        Metric("fraction", "1", "fraction of the feature maps sent", fmt=".3f", train=True),
        Metric("energy_queue", "J", "energy virtual queue Q (time mean)", fmt=".3f", short="Q", train=True, plot=True),
        Metric("reward", "1", "episode return ((V A - sum Q E) / V summed)", fmt=".2f", higher_is_better=True),
    )
    algorithms = (
        Algorithm(
            "enachi-ppo",
            "ENACHI-PPO",
            f"{_ALG}:build_algo_config",
            f"{_ALG}:load_policy",
            "PPO picks the splits; ENACHI's Stage I and II run inside the env runners (not in the paper)",
        ),
    )
    algorithm_schema = ENACHIAlgorithmSection
    evaluation_schema = ENACHIEvaluationSection
    baselines = {
        "ENACHI": f"{_BASE}:enachi",
        "ProgressiveFTX-L1": f"{_BASE}:progressive_l1",
        "ProgressiveFTX-L2": f"{_BASE}:progressive_l2",
        "ProgressiveFTX-L3": f"{_BASE}:progressive_l3",
        "ProgressiveFTX-L4": f"{_BASE}:progressive_l4",
        "Edge-only": f"{_BASE}:edge_only",
        "Device-only": f"{_BASE}:device_only",
        "EFFECT-DNN": f"{_BASE}:effect_dnn",
        "SC-CAO": f"{_BASE}:sc_cao",
        "Random-split": f"{_BASE}:random_split",
    }
    evaluation_record_keys = ("episodes", "seed", "frames")
    gym_envs = {"splitrl/ENACHI-v0": "splitrl.worlds.enachi.env:ENACHIEnv"}
    commands = {"enachi-data": "splitrl.worlds.enachi.commands:register"}
    smoke_config = {
        "scenario": {"num_devices": 2, "bandwidth_hz": 6e6, "episode_frames": 4},
        "algorithm": {"hidden": [16], "train_batch_size": 16, "minibatch_size": 8, "num_epochs": 1},
        "evaluation": {"episodes": 2, "frames": 3},
    }

    def resolve_scenario(self, raw):
        from splitrl.worlds.enachi.scenario import make_enachi_scenario

        return make_enachi_scenario(raw).to_dict()

    def explain_scenario(self):
        from splitrl.worlds.enachi.scenario import ENACHIScenario

        return explain_section(ENACHIScenario)

    def check_algorithm(self, algorithm):
        check_minibatch(algorithm)

    def evaluate(self, policy, scenario, evaluation):
        from splitrl.worlds.enachi.evaluate import evaluate_policy

        return evaluate_policy(policy, scenario, evaluation)

    def plot(self, comparison, path):
        from splitrl.worlds.enachi.evaluate import plot

        plot(comparison, path)


WORLD = ENACHIWorld()
