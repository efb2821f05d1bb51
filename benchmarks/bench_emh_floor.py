"""The compute floor of one EMH-PPO minibatch update, against the RLlib learner's update.

The floor: EMH-PPO's networks (``configs/emh_ppo.yaml``: the shared 512-256 GELU embedding, three
256-128-64 agent heads, the shared 256-128-64 critic; built by the world's own module spec) on one
minibatch per agent (256 rows each), forward once through the shared parts, a stand-in loss of
every output, backward, one fused Adam step -- plain torch, no RLlib, the GEMMs and little else.
The learner: the world's own ``EMHPPOTorchLearner`` updating the same module on one sampled
train batch (10 epochs of 256-row minibatches), per minibatch.  The ratio says how much of a
learner update is still overhead above the arithmetic (issue 20, ``docs/scaling.md``).

Prints a table and writes ``benchmarks/out/emh_floor.json``.

    python benchmarks/bench_emh_floor.py [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def floor_ms(cfg: dict, reps: int = 30) -> float:
    import torch
    from ray.rllib.core.columns import Columns

    from splitrl.rl.fast_learner import adam
    from splitrl.worlds.emh.algorithms import module_spec

    multi = module_spec(cfg).build()
    mb = cfg["algorithm"]["minibatch_size"]
    g = torch.Generator().manual_seed(0)
    batch = {mid: {Columns.OBS: torch.rand(mb, 9, generator=g)} for mid in multi.keys()}
    params = list({id(p): p for m in multi.values() for p in m.parameters()}.values())
    opt = adam(params)

    def step():
        out = multi.forward_train(batch)
        loss = sum(
            o[Columns.ACTION_DIST_INPUTS].square().mean() + o[Columns.VF_PREDS].square().mean() for o in out.values()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - t0) / reps * 1e3


def learner_ms(cfg: dict, updates: int = 2) -> tuple[float, int]:
    import ray
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    from splitrl.worlds.emh.algorithms import build_algo_config

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = build_algo_config(cfg).build_algo()
        episodes, _ = synchronous_parallel_sample(
            worker_set=algo.env_runner_group,
            max_env_steps=algo.config.total_train_batch_size,
            sample_timeout_s=600,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
        c = algo.config
        calls = []
        learner = algo.learner_group._learner
        inner = learner._update
        learner._update = lambda *a, **k: calls.append(1) or inner(*a, **k)
        t0 = time.perf_counter()
        for _ in range(updates):
            algo.learner_group.update(
                episodes=episodes,
                timesteps={"num_env_steps_sampled_lifetime": c.total_train_batch_size},
                num_epochs=c.num_epochs,
                minibatch_size=c.minibatch_size,
                shuffle_batch_per_epoch=c.shuffle_batch_per_epoch,
            )
        wall = time.perf_counter() - t0
        algo.stop()
    finally:
        ray.shutdown()
    return wall / len(calls) * 1e3, len(calls) // updates


def main(argv=None) -> dict:
    import torch

    from splitrl.platform.config import load_config

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_config(ROOT / "configs" / "emh_ppo.yaml", ["resources.num_env_runners=0"])
    floor = floor_ms(cfg)
    learn, per_update = learner_ms(cfg)
    out = {
        "threads": a.threads,
        "floor_ms_per_minibatch": floor,
        "learner_ms_per_minibatch": learn,
        "minibatches_per_update": per_update,
        "learner_over_floor": learn / floor,
    }
    print(f"{'threads':>7} {'floor ms':>9} {'learner ms':>11} {'ratio':>6} {'minibatches':>12}")
    print(f"{a.threads:>7} {floor:9.1f} {learn:11.1f} {learn / floor:6.2f} {per_update:>12}")
    path = ROOT / "benchmarks" / "out" / "emh_floor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
