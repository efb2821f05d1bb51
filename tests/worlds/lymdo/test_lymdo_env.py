"""The LyMDO world's physics, tables, mappings and validation: equations recomputed, the notes'
oracle tables and calibration, C7, the vector env equal to the single env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import splitrl  # noqa: F401  (registers splitrl/LyMDO-v0)
from splitrl.core.errors import ScenarioError
from splitrl.worlds.lymdo.baselines import Edge, GreedyDPP, Local
from splitrl.worlds.lymdo.env import LyMDOEnv, LyMDOVectorEnv, joint_allocation, map_partition
from splitrl.worlds.lymdo.evaluate import run_episodes
from splitrl.worlds.lymdo.scenario import make_lymdo_scenario
from splitrl.worlds.lymdo.system import LyMDOSystem


def test_layer_tables_are_the_notes_oracle():
    t = make_lymdo_scenario({}).tables()
    assert t.num_points.tolist() == [9, 9, 11, 11, 11]
    np.testing.assert_allclose(
        t.ue_cycles[0, :9] / 1e6, [0, 8.433, 35.307, 48.764, 66.706, 78.668, 83.198, 85.211, 85.703], atol=1e-3
    )
    np.testing.assert_allclose(
        t.bits[2] / 1e6, [1.2042, 6.4225, 6.4225, 6.4225, 3.2113, 3.2113, 1.6056, 1.6056, 0.8028, 0.0164, 0], atol=1e-4
    )
    np.testing.assert_allclose(
        t.memory_bytes[0, :9] / 1e6,
        [196.384, 196.328, 195.591, 193.911, 191.651, 190.214, 99.607, 59.320, 49.483],
        atol=1e-3,
    )
    np.testing.assert_allclose(
        t.memory_bytes[2] / 1e6,
        [38.811, 38.989, 38.812, 38.233, 37.680, 36.771, 34.565, 31.631, 22.719, 11.390, 10.154],
        atol=1e-3,
    )
    np.testing.assert_allclose(
        t.ue_cycles + t.edge_cycles, np.broadcast_to(t.ue_cycles[:, -1:], t.ue_cycles.shape), rtol=1e-12
    )


def test_one_slot_recomputed_from_the_equations():
    s = make_lymdo_scenario({"arrival_process": "constant", "arrival_rate_per_s": 2.0})
    sys = LyMDOSystem(s, np.random.default_rng(3))
    sys.Q[:] = [3.0, 0.0, 1.0, 20.0, 0.5]
    sys.W[:] = [0.1, 0.0, 0.0, 0.2, 0.0]
    part = np.array([[4, 8, 0, 9, 10]])
    Q, W, beta = sys.Q.copy(), sys.W.copy(), sys.beta.copy()
    out = sys.step(part)
    t = s.tables()
    n = np.arange(5)
    d_ue, d_es, b, mem = (x[n, part[0]] for x in (t.ue_cycles, t.edge_cycles, t.bits, t.memory_bytes))
    f, fe, a = out["f_ue_hz"][0], out["f_es_hz"][0], out["alpha"][0]
    lam = 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ue = np.where(d_ue > 0, 0.5 * d_ue * (1 / f + 1 / (f - lam * d_ue)), 0.0)  # eq. (2), exact form
    snr = 0.1 * beta[0] * s.mean_gain / (5e6 * s.noise_psd_w_per_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(a > 0, a * 5e6 * np.log2(1 + snr / a), 0.0)
        t_tx = np.where(b > 0, b / rate, 0.0)  # eq. (3)
        t_es = np.where(d_es > 0, d_es / fe, 0.0)  # eq. (4)
    energy = 1e-28 * f**2 * d_ue * lam + 0.1 * t_tx * lam  # eq. (5), tau = 1 s
    np.testing.assert_allclose(out["delay_s"][0], t_ue + t_tx + t_es, rtol=1e-12)
    np.testing.assert_allclose(out["energy_j"][0], energy, rtol=1e-12)
    np.testing.assert_allclose(out["memory_bytes"][0], mem)
    reward = -np.sum(Q[0] * energy + W[0] * mem / 1e9 + 10 * (t_ue + t_tx + t_es))  # eq. (14), Q/W before
    assert out["reward"][0] == pytest.approx(reward, rel=1e-12)
    np.testing.assert_allclose(sys.Q[0], np.maximum(Q[0] + 100 * (energy - s.energy_budget_j), 0))  # eq. (8)
    np.testing.assert_allclose(sys.W[0], np.maximum(W[0] + 10 * (mem - np.array(s.memory_budget_bytes)) / 1e9, 0))
    assert fe.sum() == pytest.approx(15e9) and a.sum() == pytest.approx(1.0)  # budgets tight where used
    assert a[4] == 0 and fe[4] == 0  # the fully local UE gets neither


@pytest.mark.parametrize(
    "rate, local, edge",
    [
        (
            0.5,
            (0.1137, 9.64, 24.49, 49.48, 10.15, 0.00, 0.00, -5.68),
            (0.2219, 8.46, 8.47, 196.38, 38.81, None, None, -49.79),
        ),
        (
            2.5,
            (0.2143, 40.47, 62.29, 49.48, 10.15, 9.12, 43.40, -19.41),
            (0.2226, 40.65, 43.74, 196.38, 38.81, 9.51, 1.06, -50.69),
        ),
    ],
)
def test_the_notes_calibration_table_is_reproduced(rate, local, edge):
    """The notes' prototype (seed 7, one 200-slot episode, constant rate): mean delay, energy and
    memory of the AlexNet / ResNet UEs, their mean energy queues and the reward per slot, within
    1 % (the prototype's speed of light was 3e8 m/s, the platform's is exact: 0.2 % less gain)."""
    s = make_lymdo_scenario({"arrival_process": "constant", "arrival_rate_per_s": rate})
    for policy, want in ((Local(), local), (Edge(), edge)):
        sys = LyMDOSystem(s, np.random.default_rng(7))
        policy.reset(sys, 0)
        rows = [sys.step(np.asarray(policy.act(sys, None))[None]) for _ in range(200)]
        mean = {k: np.mean([r[k][0] for r in rows], axis=0) for k in ("delay_s", "energy_j", "memory_bytes", "Q")}
        got = (
            mean["delay_s"].mean(),
            1e3 * mean["energy_j"][:2].mean(),
            1e3 * mean["energy_j"][2:].mean(),
            mean["memory_bytes"][:2].mean() / 1e6,
            mean["memory_bytes"][2:].mean() / 1e6,
            mean["Q"][:2].mean(),
            mean["Q"][2:].mean(),
            np.mean([r["reward"][0] for r in rows]),
        )
        for g, w in zip(got, want):
            if w is not None:
                assert g == pytest.approx(w, abs=max(0.011, 0.01 * abs(w))), (policy.name, got)


def test_greedy_dpp_beats_local_and_edge_in_the_slot_objective():
    s = make_lymdo_scenario({"arrival_process": "constant", "arrival_rate_per_s": 2.5, "slots_per_episode": 30})
    res = {p.name: run_episodes(p, s.to_dict(), 2.5, 2, 0) for p in (Local(), Edge(), GreedyDPP(3))}
    assert res["Greedy-DPP"]["reward"] > max(res["Local"]["reward"], res["Edge"]["reward"])
    assert res["Greedy-DPP"]["delay"] < res["Local"]["delay"]


def test_partition_mappings():
    L = np.array([9, 11])
    y = np.array([[-30.0, -30.0], [30.0, 30.0], [0.0, 0.0]])
    assert map_partition(y, L, "bins").tolist() == [[0, 0], [8, 10], [4, 5]]
    assert map_partition(np.array([5.0, 5.0]), L, "paper").tolist() == [7, 9]  # eq. 13 misses L at finite y
    many = map_partition(np.linspace(-4, 4, 2001)[:, None].repeat(2, 1), L, "bins")
    assert set(many[:, 0]) == set(range(9)) and set(many[:, 1]) == set(range(11))  # every point reachable


def test_the_joint_baselines_mapping_keeps_every_queue_stable():
    s = make_lymdo_scenario({})
    sys = LyMDOSystem(s, np.random.default_rng(0), batch=64)
    y = np.random.default_rng(1).normal(0, 5, (64, 20))
    part, (f_ue, f_es, alpha) = joint_allocation(sys, y, "bins")
    d_ue = sys.loads(part)[0]
    assert np.all((f_ue > sys.rate * d_ue) | (d_ue == 0)) and np.all(f_ue <= s.f_ue_max_hz)
    np.testing.assert_allclose(alpha.sum(-1), 1.0)
    np.testing.assert_allclose(f_es.sum(-1), s.f_es_max_hz)
    out = sys.step(part, (f_ue, f_es, alpha))
    assert np.all(np.isfinite(out["delay_s"]))


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"energy_budget_j": [0.04]}, "energy_budget_j"),
        ({"memory_budget_bytes": [1e8] * 4}, "memory_budget_bytes"),
        ({"energy_budget_j": [0.04, 0.04, 0.06, 0.06, 0.0]}, "energy_budget_j"),
        ({"models": ["lenet"]}, "models"),
        ({"arrival_rate_max_per_s": 7.0}, "arrival_rate_max_per_s"),  # ResNet-18 cannot run locally (C7)
        ({"arrival_process": "constant", "arrival_rate_per_s": 20.0}, "arrival_rate_per_s"),
        ({"arrival_rate_min_per_s": 3.0}, "arrival_rate_min_per_s"),
        ({"lyapunov_v": -1}, "lyapunov_v"),
        ({"partition_mapping": "round"}, "partition_mapping"),
        ({"slots": 3}, "slots"),
    ],
)
def test_bad_scenarios_name_the_key(overrides, key):
    with pytest.raises(ScenarioError) as err:
        gym.make("splitrl/LyMDO-v0", config=overrides)
    assert err.value.key == key and f"scenario.{key}" in str(err.value)


@pytest.mark.parametrize("mapping", ["categorical", "bins"])
def test_the_vector_env_equals_the_single_env_and_repeats_under_a_seed(mapping):
    cfg = {"slots_per_episode": 4, "partition_mapping": mapping}
    single = LyMDOEnv(cfg)
    vec = LyMDOVectorEnv(cfg, num_envs=1)
    o1, _ = single.reset(seed=5)
    o2, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(o1, o2[0])
    rng = np.random.default_rng(2)
    actions = rng.integers(0, 9, (4, 5)) if mapping == "categorical" else rng.normal(0, 2, (4, 5))
    for y in actions:
        a = single.step(y)
        b = vec.step(y[None])
        np.testing.assert_array_equal(a[0], b[0][0])
        assert a[1] == pytest.approx(b[1][0]) and a[3] == bool(b[3][0])
    assert a[3]  # truncated after slots_per_episode


@pytest.mark.parametrize("process", ["uniform", "episode", "episode_common"])
def test_arrival_processes(process):
    """``uniform`` redraws every UE's rate every slot, ``episode`` once per episode (a new system),
    ``episode_common`` once per episode and equal over the UEs; all within [min, max]."""
    s = make_lymdo_scenario({"arrival_process": process, "arrival_rate_min_per_s": 0.7, "arrival_rate_max_per_s": 2.2})
    rates = []
    for episode in range(3):
        system = LyMDOSystem(s, np.random.default_rng(episode), batch=4)
        seen = [system.rate.copy()]
        for _ in range(5):
            system.step(np.full((4, s.num_ues), 3))
            seen.append(system.rate.copy())
        rates.append(np.stack(seen))  # (slots, B, N)
    r = np.stack(rates)
    assert r.min() >= 0.7 and r.max() <= 2.2
    changes_in_episode = np.abs(np.diff(r, axis=1)).max()
    if process == "uniform":
        assert changes_in_episode > 0.1
    else:
        assert changes_in_episode == 0.0
        assert np.abs(r[0, 0] - r[1, 0]).max() > 0.05  # a new episode draws anew
        assert np.unique(r[0, 0].round(12)).size > 1  # and the copies of a batch differ
    spread_over_ues = np.ptp(r, axis=-1).max()
    assert (spread_over_ues == 0.0) == (process == "episode_common")


def test_the_evaluation_horizon_key_sets_the_episode_length_and_long_horizons_meet_the_budgets():
    """``evaluation.slots_per_episode`` evaluates over longer episodes than training's K; the
    virtual queues pay their start-up transient back, so Greedy-DPP's time-average energy of the
    largest UE at 2.5 tasks/s (over budget within 200 slots) falls with the horizon."""
    from splitrl.worlds.lymdo.evaluate import evaluate_policy

    sc = make_lymdo_scenario({}).to_dict()
    ev = {"episodes": 1, "seed": 3, "arrival_rates": [2.5]}
    short = evaluate_policy(GreedyDPP(1), sc, {**ev, "slots_per_episode": 60})["by_rate"]["2.5"]
    long = evaluate_policy(GreedyDPP(1), sc, {**ev, "slots_per_episode": 600})["by_rate"]["2.5"]
    assert len(short["energy_queue_trace"]["alexnet"]) == 60
    assert len(long["energy_queue_trace"]["resnet18"]) == 600
    assert long["energy_vs_budget"] < short["energy_vs_budget"]
