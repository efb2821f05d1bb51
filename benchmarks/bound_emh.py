"""What the EMH-PPO world allows at the paper's test setting: a latency bound and the partition fronts.

Not a speed benchmark: two analyses behind docs/results/emh.md ("What this world allows"), printed
and written to benchmarks/out/emh_bound.json.

1. **Latency bound for equal windows.**  If every device gets the same window size (so all are
   active at every position, as in the reference schedules), in a task window the x-th tasks of
   all devices run side by side and the window lasts
   ``max_n sum_x L_{n,x} >= (1/N) sum_n sum_x L_{n,x}``, so an episode's total
   latency is at least ``tasks per device x E[min over joint decisions of the devices' mean
   per-task latency]``, the minimum taken for each window's own gains (an oracle that knows
   them).  The joint decisions are searched exhaustively: every device's partition point on the
   Pareto front of (device MAC share, bits sent) -- no other point can lower latency -- every
   channel, every server, and transmit powers on a log grid of ``--powers`` levels in
   [p_floor * P_limit, P_limit].  The expectation is over ``--draws`` shadowing draws at the test
   distance.  No equal-window policy restricted to the power grid can do better in expectation;
   a finer grid changes the figure by what the JSON reports as ``grid_refinement_change`` (a twice finer grid
   on the first tenth of the same draws).  Unequal windows escape it: positions where fewer
   devices are active see less contention, and the script also runs two such hand schedules
   (:class:`StaggeredWindows`: the single task offloaded, or run on the device while the other
   two offload), which beat the equal-window bound.
2. **Partition fronts.**  A task's latency and energy depend on its partition point only through
   (device MAC share, bits sent), so a point that another point matches or beats in both can
   never help.  For ResNet-50, GoogLeNet and MobileNetV2 the script lists the Pareto fronts of
   the operator-grained (Algorithm 1) and vertical (layer chain) point sets under the scenario's
   transfer model; points only the operator-grained set has are what it could gain.

3. **Operator vs vertical through the devices' joint decisions** (``--partitioning-bounds``): the
   bound of 1. with each point set, for ResNet-50 and GoogLeNet with raw (8 bit/element) and
   encoded inputs -- whether the operator-only front points that raw inputs bring lower it.

    python benchmarks/bound_emh.py [--l0 S] [--draws K] [--powers P] [--seed S] [--set KEY=VALUE ...]
                                   [--partitioning-bounds]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from splitrl.platform.config import parse_set
from splitrl.worlds.emh.actions import encode_decisions
from splitrl.worlds.emh.baselines import EMHPolicy
from splitrl.worlds.emh.evaluate import evaluate_emh_policy
from splitrl.worlds.emh.physics import path_gain
from splitrl.worlds.emh.scenario import make_emh_scenario
from splitrl.worlds.emh.system import EMHSystem

ROOT = Path(__file__).resolve().parent.parent


def joint_decisions(world: EMHSystem, powers: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every joint (point, channel, server, power) of the N devices, as ``(N, K)`` arrays."""
    s = world.scenario
    N = s.num_devices
    per_device = list(
        itertools.product(world.pareto_points(), range(s.num_channels), range(s.num_servers), range(len(powers)))
    )
    combos = np.array(list(itertools.product(range(len(per_device)), repeat=N)))  # (K, N)
    table = np.array(per_device)  # (D, 4)
    chosen = table[combos]  # (K, N, 4)
    point, channel, server, level = (chosen[..., j].T for j in range(4))
    return point, channel, server, powers[level]


def latency_bound(overrides: dict, *, draws: int, levels: int, seed: int) -> dict:
    """Lower bound on the expected total latency of an episode at the test setting (see module doc)."""
    world = EMHSystem(make_emh_scenario(overrides))
    s = world.scenario
    powers = s.p_limit_w * np.geomspace(s.p_floor, 1.0, levels)
    point, channel, server, power = joint_decisions(world, powers)
    active = np.ones(point.shape, dtype=bool)
    rng = np.random.default_rng(seed)
    world.reset(rng)
    best = np.empty(draws)
    for k in range(draws):
        world.draw_channel()
        lat, _, _ = world.evaluate_tasks(point, channel, server, power, active)
        best[k] = lat.mean(0).min()
    tasks = float(s.fixed_tasks)
    local = s.local_factor * world.l0
    bound = tasks * best.mean()
    return {
        "latency_bound_s": bound,
        "per_draw_s": best,
        "stderr_s": tasks * best.std(ddof=1) / np.sqrt(draws),
        "local_only_s": tasks * local,
        "bound_vs_local": bound / (tasks * local) - 1.0,
        "per_task_bound_in_l0": best.mean() / world.l0,
        "joint_decisions": int(point.shape[1]),
        "pareto_points": [i + 1 for i in world.pareto_points()],
        "power_levels": levels,
        "draws": draws,
    }


class StaggeredWindows(EMHPolicy):
    """A hand schedule with *unequal* windows, which the bound above does not cover: windows of
    (W_max, W_max, 1) tasks, the single-task device rotating; the two full-window devices each on a
    channel and server of their own at full power, the third on the second channel and server with
    equal received power, or (``local_single``) running its task on the device, which takes about
    as long as five offloaded tasks (5 L0 against 5 x (L0 + transfer)).  (N = 3, M = C = 2 only.)"""

    def __init__(self, local_single: bool = False):
        self.local_single = local_single
        self.name = "Staggered windows" + (" (single task local)" if local_single else "")

    def reset(self, world, seed):
        super().reset(world, seed)
        self.window_index = 0

    def act(self, world, obs):
        s = world.scenario
        a, b, c = np.roll(np.arange(s.num_devices), self.window_index)
        self.window_index += 1
        window = np.full(s.num_devices, s.max_window)
        window[c] = 1
        channel = np.zeros((s.num_devices, s.max_window), dtype=int)
        channel[[b, c]] = 1
        power = np.full(channel.shape, s.p_limit_w)
        g = path_gain(world.distance, world.shadow_db, ref_distance_m=s.ref_distance_m, exponent=s.path_loss_exponent)
        weak, strong = (b, c) if g[b] < g[c] else (c, b)
        power[strong, 0] = s.p_limit_w * g[weak] / g[strong]  # equal received power where they share
        server = channel  # the full-window devices on servers 0 and 1, the single task with the second
        point = np.zeros(channel.shape, dtype=int)
        if self.local_single:
            point[c] = world.num_points - 1
            power[b] = s.p_limit_w
        return encode_decisions(world, window, point, channel, server, power)


def staggered_schedule(overrides: dict, *, local_single: bool = False, episodes: int = 5, seed: int = 10000) -> dict:
    """:class:`StaggeredWindows` on ``episodes`` seeded episodes (compare's evaluation loop)."""
    evaluation = {
        "episodes": episodes,
        "seed": seed,
        "fixed_tasks": overrides["fixed_tasks"],
        "fixed_distance_m": overrides["fixed_distance_m"],
    }
    m = evaluate_emh_policy(StaggeredWindows(local_single), overrides, evaluation)
    sc = make_emh_scenario(overrides)
    local = overrides["fixed_tasks"] * sc.local_factor * sc.resolved_l0()
    return {
        "latency_s": m["latency"],
        "vs_local": m["latency"] / local - 1.0,
        "energy_j_per_task": m["energy"],
        "reward": m["reward"],
    }


def fronts(overrides: dict, models=("resnet50", "googlenet", "mobilenet_v2")) -> dict:
    out = {}
    for model in models:
        sets = {}
        for part in ("operator", "vertical"):
            w = EMHSystem(make_emh_scenario({**overrides, "model": model, "partitioning": part}))
            sets[part] = {(round(float(w.share[i]), 9), round(float(w.tx_bits[i]), 3)) for i in w.pareto_points()}
            sets[part + "_points"] = w.num_points
        out[model] = {
            "operator_points": sets["operator_points"],
            "vertical_points": sets["vertical_points"],
            "front": [{"device_share": a, "tx_kB": b / 8e3} for a, b in sorted(sets["vertical"])],
            "operator_only": [
                {"device_share": a, "tx_kB": b / 8e3} for a, b in sorted(sets["operator"] - sets["vertical"])
            ],
            "vertical_only": [
                {"device_share": a, "tx_kB": b / 8e3} for a, b in sorted(sets["vertical"] - sets["operator"])
            ],
        }
    return out


def partitioning_bounds(
    overrides: dict,
    *,
    models=("resnet50", "googlenet"),
    input_bits=(8.0, 0.5),
    levels: int = 4,
    draws: int = 20,
    seed: int = 0,
) -> list[dict]:
    """The equal-window latency bound with operator-grained vs vertical points, per model and input
    model: whether the operator-only front points (raw inputs) lower it through the joint decisions
    of the devices (window balancing), not just a lone task's cost."""
    out = []
    for model, bits, part in itertools.product(models, input_bits, ("operator", "vertical")):
        b = latency_bound(
            {**overrides, "model": model, "partitioning": part, "input_bits_per_element": bits},
            draws=draws,
            levels=levels,
            seed=seed,
        )
        out.append(
            {
                "model": model,
                "input_bits_per_element": bits,
                "partitioning": part,
                "latency_bound_s": b["latency_bound_s"],
                "stderr_s": b["stderr_s"],
                "bound_vs_local": b["bound_vs_local"],
                "pareto_points": b["pareto_points"],
                "joint_decisions": b["joint_decisions"],
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--l0", type=float, default=0.11289712999860058, help="server baseline latency L0 in s")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--powers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="EMH scenario override")
    ap.add_argument(
        "--partitioning-bounds",
        action="store_true",
        help="also the bound for operator vs vertical points, ResNet-50 and GoogLeNet, raw and encoded "
        "inputs (4 power levels, 20 draws; about 4 minutes)",
    )
    args = ap.parse_args()
    overrides = {"l0_s": args.l0, "fixed_tasks": 50, "fixed_distance_m": 50.0}
    for kv in args.set:
        key, value = parse_set(kv)
        overrides[key] = value
    bound = latency_bound(overrides, draws=args.draws, levels=args.powers, seed=args.seed)
    # the same seed gives the same shadowing draws: compare a twice finer grid on the first ones
    check = max(2, args.draws // 10)
    finer = latency_bound(overrides, draws=check, levels=2 * args.powers, seed=args.seed)
    bound["grid_refinement_change"] = finer["per_draw_s"].mean() / bound["per_draw_s"][:check].mean() - 1.0
    bound["grid_refinement_draws"] = check
    del bound["per_draw_s"]
    stagger = staggered_schedule(overrides)
    stagger_local = staggered_schedule(overrides, local_single=True)
    result = {
        "scenario": overrides,
        "bound": bound,
        "staggered_schedule": stagger,
        "staggered_schedule_local_single": stagger_local,
        "fronts": fronts(overrides),
    }
    b = bound
    print(
        f"latency bound at {overrides['fixed_tasks']} tasks, {overrides['fixed_distance_m']} m: "
        f"{b['latency_bound_s']:.3f} s (+- {b['stderr_s']:.3f}) vs Local-only {b['local_only_s']:.3f} s: "
        f"{100 * b['bound_vs_local']:+.1f} %  ({b['per_task_bound_in_l0']:.2f} L0 per task; "
        f"{b['joint_decisions']:,} joint decisions, {b['power_levels']} power levels, {b['draws']} draws; "
        f"{2 * b['power_levels']} levels on {b['grid_refinement_draws']} draws: "
        f"{100 * b['grid_refinement_change']:+.2f} %)"
    )
    print(
        f"staggered (5, 5, 1) windows, a hand schedule outside the bound's scope: {stagger['latency_s']:.3f} s "
        f"({100 * stagger['vs_local']:+.1f} %), {stagger['energy_j_per_task']:.4f} J/task, "
        f"reward {stagger['reward']:.2f}"
    )
    sl = stagger_local
    print(
        f"the same with the single task run on the device: {sl['latency_s']:.3f} s ({100 * sl['vs_local']:+.1f} %), "
        f"{sl['energy_j_per_task']:.4f} J/task, reward {sl['reward']:.2f}"
    )
    for model, f in result["fronts"].items():
        front = ", ".join(f"({p['device_share']:.4f}, {p['tx_kB']:.1f} kB)" for p in f["front"])
        print(
            f"{model}: {f['operator_points']} operator / {f['vertical_points']} vertical points; "
            f"vertical front [{front}]; operator-only front points: {len(f['operator_only'])}"
        )
    if args.partitioning_bounds:
        result["partitioning_bounds"] = partitioning_bounds(overrides, seed=args.seed)
        for b in result["partitioning_bounds"]:
            print(
                f"{b['model']}, {b['input_bits_per_element']:g} bit/element input, {b['partitioning']}: bound "
                f"{b['latency_bound_s']:.3f} s (+- {b['stderr_s']:.3f}; {100 * b['bound_vs_local']:+.1f} %) over "
                f"{b['joint_decisions']:,} joint decisions, front points {b['pareto_points']}"
            )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "emh_bound.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
