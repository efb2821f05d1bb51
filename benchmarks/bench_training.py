"""Training throughput of every world against its own simulator, measured in the same run.

For each world (its shipped config, ``configs/<world>.yaml``, the paper's hyperparameters): build
the RLlib algorithm exactly as ``splitrl train`` does (local Ray, ``resources.torch_threads``),
run ``--warmup`` iterations, then time ``--iterations`` more:

* ``train_steps_per_s``: env steps sampled per second of wall time over the timed iterations (an
  env step is the world's: a window for EMH-PPO, a period for LyaPPO, a slot for LyMDO, a frame
  for ENACHI; RLlib's ``num_env_steps_sampled_lifetime``);
* ``sample_s``, ``learn_s``, ``other_s``: seconds per timed iteration spent sampling (PPO's
  ``synchronous_parallel_sample``, the env runners' collection), in the learner update
  (``learner_group.update``: the learner connector's GAE and every minibatch step), and the rest
  of the wall time, measured by wrapping those two calls (RLlib's own timers are smoothed across
  iterations, the warm-up included);
* ``env_steps_per_s``: the *same* env object the training samples from (the local env runner's,
  connectors excluded) stepped with random actions for about ``--env-seconds`` seconds;
* ``ratio``: ``train_steps_per_s / env_steps_per_s`` -- the figure that is robust to this
  machine's noise (issue 20's goals: >= 0.2 for EMH-PPO).

Prints a table and writes ``benchmarks/out/training.json`` as
``{WORLD: {"train_steps_per_s", "env_steps_per_s", "ratio", "sample_s", "learn_s", "other_s", ...}}``.

    python benchmarks/bench_training.py                       # every world, 3 timed iterations
    python benchmarks/bench_training.py --world emh --iterations 5
    python benchmarks/bench_training.py --set resources.num_env_runners=1   # any config key
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"lyappo": "lyappo.yaml", "emh": "emh_ppo.yaml", "lymdo": "lymdo.yaml", "enachi": "enachi.yaml"}


def _timed(fn, totals: dict, key: str):
    """``fn`` adding its wall time to ``totals[key]`` (the benchmark's phase split)."""

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0

    return wrapper


def env_speed(env, seconds: float, seed: int = 0) -> float:
    """Env steps/s of ``env`` (a gymnasium vector env or an RLlib ``MultiAgentEnv``) with random actions."""
    from ray.rllib.env.multi_agent_env import MultiAgentEnv

    rng = np.random.default_rng(seed)
    envs = list(getattr(env, "envs", [env]))
    if isinstance(getattr(envs[0], "unwrapped", envs[0]), MultiAgentEnv):  # one per num_envs_per_env_runner
        envs = [e.unwrapped for e in envs]
        obs = [e.reset(seed=int(rng.integers(1 << 31)))[0] for e in envs]
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for i, e in enumerate(envs):
                obs[i], _, term, trunc, _ = e.step({a: e.get_action_space(a).sample() for a in obs[i]})
                if term.get("__all__") or trunc.get("__all__"):
                    obs[i] = e.reset(seed=int(rng.integers(1 << 31)))[0]
                steps += 1
        return steps / (time.perf_counter() - t0)
    env.reset(seed=int(rng.integers(1 << 31)))
    env.action_space.seed(int(rng.integers(1 << 31)))
    num = int(getattr(env, "num_envs", 1))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(env.action_space.sample())  # vector envs autoreset
        steps += num
    return steps / (time.perf_counter() - t0)


def _training_env(config):
    """The env an env runner of ``config`` samples from, built by RLlib's own runner class (the
    same vectorisation and ``num_envs_per_env_runner`` as in training), in this process."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    cls = config.env_runner_cls or (MultiAgentEnvRunner if config.is_multi_agent else SingleAgentEnvRunner)
    env = cls(config=config.copy(copy_frozen=False)).env
    return env


def bench_world(name: str, *, warmup: int, iterations: int, env_seconds: float, sets: list[str]) -> dict:
    import ray

    from splitrl import worlds
    from splitrl.platform.config import load_config, set_torch_threads

    cfg = load_config(ROOT / "configs" / CONFIGS[name], sets)
    world = worlds.of(cfg)
    set_torch_threads(cfg)
    ray.init(num_cpus=cfg["resources"]["num_cpus"] or 2, include_dashboard=False, log_to_driver=False)
    import ray.rllib.algorithms.ppo.ppo as ppo_module

    totals = {"sample": 0.0, "learn": 0.0}
    sampler = ppo_module.synchronous_parallel_sample
    try:
        algo = world.build_algorithm(cfg).build_algo()
        ppo_module.synchronous_parallel_sample = _timed(sampler, totals, "sample")
        algo.learner_group.update = _timed(algo.learner_group.update, totals, "learn")
        for _ in range(warmup):
            result = algo.train()
        steps0 = float(result.get("num_env_steps_sampled_lifetime", 0.0)) if warmup else 0.0
        totals.update(sample=0.0, learn=0.0)
        t0 = time.perf_counter()
        for _ in range(iterations):
            result = algo.train()
        wall = time.perf_counter() - t0
        sample, learn = totals["sample"], totals["learn"]
        steps = float(result["num_env_steps_sampled_lifetime"]) - steps0
        algo.stop()
        raw = env_speed(_training_env(algo.config), env_seconds)
    finally:
        ppo_module.synchronous_parallel_sample = sampler
        ray.shutdown()
    train = steps / wall
    per_it = wall / iterations
    return {
        "train_steps_per_s": train,
        "env_steps_per_s": raw,
        "ratio": train / raw,
        "sample_s": sample / iterations,
        "learn_s": learn / iterations,
        "other_s": max(per_it - (sample + learn) / iterations, 0.0),
        "iteration_s": per_it,
        "steps_per_iteration": steps / iterations,
        "iterations": iterations,
        "num_env_runners": cfg["resources"]["num_env_runners"],
        "torch_threads": cfg["resources"]["torch_threads"],
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world", action="append", choices=sorted(CONFIGS), help="default: every world")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--env-seconds", type=float, default=5.0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (all worlds)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "training.json")
    a = p.parse_args(argv)
    out = {}
    for name in a.world or sorted(CONFIGS):
        out[name] = bench_world(name, warmup=a.warmup, iterations=a.iterations, env_seconds=a.env_seconds, sets=a.set)
    head = f"{'world':8} {'train/s':>9} {'env/s':>9} {'ratio':>7} {'sample s':>9} {'learn s':>8} {'other s':>8}"
    print(head)
    for name, r in out.items():
        print(
            f"{name:8} {r['train_steps_per_s']:9.0f} {r['env_steps_per_s']:9.0f} {r['ratio']:7.3f} "
            f"{r['sample_s']:9.2f} {r['learn_s']:8.2f} {r['other_s']:8.2f}"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(a.out.read_text()) if a.out.is_file() else {}
    a.out.write_text(json.dumps({**old, **out}, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
