"""A toy world, defined entirely in this folder, to show that the platform's seam holds.

N devices each get one task per step and either run it locally or offload it to a shared edge
server (the server's CPU is split evenly among the devices that offload).  Nothing outside this
folder names it: importing this package registers it (``splitrl.worlds.register``), and the
platform -- config, ``train``, ``compare``, checkpoints, sweeps -- reaches it only through the
world protocol.  ``tests/test_world_contract.py`` imports every package under ``tests/plugin_worlds/``.
"""

from __future__ import annotations

from typing import Literal

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.core.schema import PositiveFloat, PositiveInt, Section, explain_section, key, validate_section
from splitrl.rl.ppo import PPOSection
from splitrl.worlds.base import Algorithm, BaseWorld, Metric


class ToyScenario(Section):
    world: Literal["toy"] = key("toy", "the world")
    name: str = key("toy", "the scenario's name")
    num_devices: PositiveInt = key(3, "N: devices")
    work_mean_cycles: PositiveFloat = key(1e9, "mean CPU cycles of a task", unit="cycles")
    input_bits: PositiveFloat = key(2e6, "bits sent to offload a task", unit="bits")
    f_device_hz: PositiveFloat = key(1e9, "device CPU", unit="cycles/s")
    f_edge_hz: PositiveFloat = key(8e9, "edge CPU, split evenly among the devices that offload", unit="cycles/s")
    rate_mean_bps: PositiveFloat = key(4e6, "mean uplink rate (exponentially distributed per step)", unit="bit/s")
    episode_steps: PositiveInt = key(20, "steps per episode (then truncated)")


class ToyAlgorithmSection(PPOSection):
    hidden: list[PositiveInt] = key([32], "actor and critic MLP widths", min_length=1)
    train_batch_size: PositiveInt = key(200, "env steps per training iteration")
    minibatch_size: PositiveInt = key(50, "SGD minibatch (env steps)")
    reward_scale: PositiveFloat = key(1.0, "rewards seen by the learner are multiplied by this")


class ToyWorld(BaseWorld):
    name = "toy"
    title = "Toy"
    doc = "local or offload per task, one shared edge server (a test of the world seam)"
    metrics = (
        Metric(
            "latency", "s", "mean task latency", unit="ms", scale=1e3, fmt=".1f", train=True, progress=True, plot=True
        ),
        Metric("offload", "1", "share of tasks offloaded", fmt=".2f", train=True),
        Metric("reward", "1", "episode return", fmt=".2f", higher_is_better=True),
    )
    algorithms = (
        Algorithm(
            "toy-ppo", "Toy-PPO", "plugin_worlds.toy.algorithms:build", "plugin_worlds.toy.algorithms:load_policy"
        ),
    )
    algorithm_schema = ToyAlgorithmSection
    baselines = {
        "Local-only": "plugin_worlds.toy.policies:local_only",
        "Edge-only": "plugin_worlds.toy.policies:edge_only",
        "Random": "plugin_worlds.toy.policies:random_choice",
    }
    gym_envs = {"splitrl-tests/Toy-v0": "plugin_worlds.toy.env:ToyEnv"}
    smoke_config = {
        "scenario": {"episode_steps": 5},
        "algorithm": {"train_batch_size": 20, "minibatch_size": 10, "num_epochs": 1},
        "evaluation": {"episodes": 2},
    }

    def resolve_scenario(self, raw):
        out = validate_section(ToyScenario, raw, "scenario")
        if out["input_bits"] / out["rate_mean_bps"] > 100.0:
            raise ConfigError(
                "scenario.rate_mean_bps",
                "an offloaded task would take over 100 s to send; raise it or lower input_bits",
            )
        return out

    def explain_scenario(self):
        return explain_section(ToyScenario)

    def evaluate(self, policy, scenario, evaluation):
        from plugin_worlds.toy.env import evaluate

        return evaluate(policy, scenario, evaluation)


WORLD = ToyWorld()
worlds.register("toy", "plugin_worlds.toy:WORLD")
WORLD.register_gym_envs()
