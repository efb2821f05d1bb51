"""The LyaPPO environment: API, equations, constraints, determinism and the Lyapunov knob."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import splitrl  # noqa: F401  (registers splitrl/LyaPPO-v0)
from splitrl.core.errors import ScenarioError
from splitrl.physics.channel import shannon_rate
from splitrl.worlds.lyappo.env import LyaPPOEnv
from splitrl.worlds.lyappo.scenario import SCENARIO_KEYS

SMALL = dict(num_devices=2, episode_periods=20)


def _run(env, action, periods, seed):
    env.reset(seed=seed)
    infos = []
    for _ in range(periods):
        _, _, _, _, info = env.step(action)
        infos.append(info)
    return infos


def test_passes_gymnasium_env_checker():
    env = gym.make("splitrl/LyaPPO-v0", **SMALL)
    check_env(env.unwrapped, skip_render_check=True)


def test_make_with_overrides_exposes_resolved_scenario():
    env = gym.make("splitrl/LyaPPO-v0", num_devices=3, arrival_rate=0.5)
    sc = env.unwrapped.scenario
    assert sc.num_devices == 3 and sc.arrival_rate == 0.5
    assert sc.f_local_max_hz == 1.5e9 and sc.f_edge_max_hz == 20e9 and sc.p_max_w == 0.3
    assert sc.slots_per_period == 10 and sc.slot_seconds == 0.01 and sc.bandwidth_hz == 1e6
    for key in (
        "num_devices",
        "services_per_device",
        "models",
        "slots_per_period",
        "slot_seconds",
        "arrival_rate",
        "f_local_max_hz",
        "f_edge_max_hz",
        "p_max_w",
        "bandwidth_hz",
        "noise_dbm_per_hz",
        "lyapunov_weight_local",
        "lyapunov_weight_tx",
        "episode_periods",
    ):
        assert key in SCENARIO_KEYS
    assert env.action_space.shape == (3 * 2,)
    assert env.observation_space.shape == (9 * 3 * 2 + 2 * 3,)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"num_device": 3}, "num_device"),
        ({"num_devices": 0}, "num_devices"),
        ({"num_devices": 2.5}, "num_devices"),
        ({"slot_seconds": -0.01}, "slot_seconds"),
        ({"p_max_w": "lots"}, "p_max_w"),
        ({"models": ["resnet50"]}, "models"),
        ({"models": ["resnet50", "no_such_net"]}, "models"),
        ({"backlog_weights": [1, 2]}, "backlog_weights"),
        ({"distance_min_m": 300.0}, "distance_min_m"),
        ({"initial_partition": "middle"}, "initial_partition"),
        ({"arrival_rate": 50.0}, "arrival_rate"),  # no partition can serve this load
        ({"arrival_rate": 4.0, "f_edge_max_hz": 1e8}, "arrival_rate"),
    ],
)
def test_bad_scenarios_name_the_key(overrides, key):
    with pytest.raises(ScenarioError) as err:
        gym.make("splitrl/LyaPPO-v0", **overrides)
    assert err.value.key == key and f"scenario.{key}" in str(err.value)


def test_same_seed_same_trajectory_and_different_seed_differs():
    env = LyaPPOEnv(**SMALL)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(10)]

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            obs, r, _, _, info = env.step(a)
            out += [obs, np.array([r]), info["slots"]["gain"], info["slots"]["Q_tx"]]
        return out

    a, b, c = rollout(7), rollout(7), rollout(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_slot_trace_shapes_equations_and_constraints():
    env = LyaPPOEnv(num_devices=3, arrival_rate=2.0)
    s = env.scenario
    env.reset(seed=3)
    G, M, N = s.slots_per_period, 3, 2
    nv = env.action_space.nvec
    rng = np.random.default_rng(1)
    for period in range(30):
        action = rng.integers(0, nv)
        _, reward, term, trunc, info = env.step(action)
        tr = info["slots"]
        for k in ("Q_local", "Q_tx", "Q_edge", "f_local", "rate", "f_edge"):
            assert tr[k].shape == (G, M, N)
        for k in ("power", "gain", "energy_local", "energy_tx"):
            assert tr[k].shape == (G, M)
        tau = s.slot_seconds
        # constraints C.4-C.10
        assert np.all(tr["f_local"].sum(-1) <= s.f_local_max_hz * (1 + 1e-9))
        assert np.all(tr["f_edge"].sum((-2, -1)) <= s.f_edge_max_hz * (1 + 1e-9))
        assert np.all((tr["power"] >= 0) & (tr["power"] <= s.p_max_w))
        cap = shannon_rate(
            tr["power"], tr["gain"], bandwidth_hz=s.bandwidth_hz / M, noise_psd_w_per_hz=s.noise_psd_w_per_hz
        )
        assert np.all(tr["rate"].sum(-1) <= cap * (1 + 1e-9) + 1e-6)
        for q, x in (("Q_local", "f_local"), ("Q_tx", "rate"), ("Q_edge", "f_edge")):
            assert np.all(tr[x] >= 0) and np.all(tr[x] * tau <= tr[q] * (1 + 1e-9) + 1e-6)
        # energies, eqs. (5)-(6)
        np.testing.assert_allclose(tr["energy_local"], tau * s.energy_coefficient * tr["f_local"].sum(-1) ** 3)
        np.testing.assert_allclose(tr["energy_tx"], tau * tr["power"])
        # local queue update, eq. (7): Q(t+1) = Q(t) - f tau + a(t) c_local of the current partition
        k = action.reshape(M, N)
        c_local = np.stack([env.system.point_local[n][k[:, n]] for n in range(N)], -1)
        pred = tr["Q_local"][:-1] - tr["f_local"][:-1] * tau + tr["arrivals"][:-1] * c_local
        np.testing.assert_allclose(tr["Q_local"][1:], np.maximum(pred, 0), rtol=1e-9, atol=1e-3)
        # reward, eq. (34), from the trace
        P = s.slot_seconds * s.p_max_w
        e = (tr["energy_local"] + tr["energy_tx"]).mean(0)
        q = (
            0.6 * tr["Q_local"].mean(0) / s.f_local_max_hz
            + 0.2 * tr["Q_tx"].mean(0) / s.reference_rate_bps
            + 0.2 * tr["Q_edge"].mean(0) / s.f_edge_max_hz
        ).sum(-1) / s.period_seconds
        np.testing.assert_allclose(reward, -np.sum(s.reward_energy_weight * e / P + s.reward_backlog_weight * q))
        assert not term and trunc == (period + 1 == s.episode_periods)
        assert env.observation_space.contains(env.features.observe(env.system, None)[0])


def test_pareto_partition_points_drop_only_dominated_points():
    full = LyaPPOEnv(**SMALL, partition_points="all")
    par = LyaPPOEnv(**SMALL)
    assert par.scenario.partition_points == "pareto"
    assert np.all(par.action_space.nvec < full.action_space.nvec)
    for tf, tp in zip(full.scenario.tables(), par.scenario.tables()):
        assert tp.c[0] == 0 and tp.c[-1] == 1 and tp.d[-1] == 0
        assert set(tp.names) <= set(tf.names)
        for c, d in zip(tf.c, tf.d):  # every dropped point is dominated by a kept one
            assert np.any((tp.c <= c) & (tp.d <= d))
        for i in range(len(tp.c)):  # no kept point is dominated
            others = np.delete(np.arange(len(tp.c)), i)
            assert not np.any((tp.c[others] <= tp.c[i]) & (tp.d[others] <= tp.d[i]))


def test_partition_extremes_route_the_work():
    env = LyaPPOEnv(**SMALL)
    nv = env.action_space.nvec
    local = _run(env, nv - 1, 15, seed=2)
    assert all(i["slots"]["Q_tx"].sum() == 0 and i["slots"]["Q_edge"].sum() == 0 for i in local)
    assert sum(i["slots"]["Q_local"].sum() for i in local) > 0
    assert all(i["energy_tx"] == 0 for i in local)
    edge = _run(env, np.zeros_like(nv), 15, seed=2)
    assert all(i["slots"]["Q_local"].sum() == 0 and i["energy_local"] == 0 for i in edge)
    assert sum(i["slots"]["Q_edge"].sum() for i in edge) > 0


def _averages(env, action, seed, periods=300):
    infos = _run(env, action, periods, seed)
    energy = np.mean([i["energy_local"] + i["energy_tx"] for i in infos])
    backlog = np.mean([i["backlog_s"] for i in infos])
    return energy, backlog


def test_raising_lyapunov_weights_lowers_energy_and_raises_backlog():
    """Drift-plus-penalty theory: for a fixed partition, energy falls and backlog grows with V."""
    results = {}
    for name, key, weights in (
        ("local", "lyapunov_weight_local", (1e17, 1e18, 1e19)),
        ("edge", "lyapunov_weight_tx", (1e12, 1e13, 1e14)),
    ):
        rows = []
        for w in weights:
            env = LyaPPOEnv(num_devices=2, **{key: w})
            nv = env.action_space.nvec
            action = nv - 1 if name == "local" else np.zeros_like(nv)
            rows.append(_averages(env, action, seed=11))
        results[name] = rows
        energies, backlogs = zip(*rows)
        assert energies[0] > energies[1] > energies[2], (name, rows)
        assert backlogs[0] < backlogs[1] < backlogs[2], (name, rows)


def test_continuous_action_maps_to_partition_points():
    from splitrl.worlds.lyappo.env import LyaPPOContinuousEnv, continuous_to_partition

    nv = np.array([19, 34])
    np.testing.assert_array_equal(continuous_to_partition([-1.0, 1.0], nv), [0, 33])
    np.testing.assert_array_equal(continuous_to_partition([0.0, 0.0], nv), [9, 16])
    np.testing.assert_array_equal(continuous_to_partition([-7.0, 7.0], nv), [0, 33])  # clipped
    env = LyaPPOContinuousEnv(**SMALL, partition_points="all")
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-1.0, 1.0, 1.0, -1.0], np.float32))
    np.testing.assert_array_equal(info["partition"], [[0, 33], [18, 0]])


def test_joint_env_allocations_respect_capacities():
    from splitrl.worlds.lyappo.env import LyaPPOJointEnv

    env = LyaPPOJointEnv(num_devices=2, arrival_rate=2.0, partition_points="all")
    s = env.scenario
    M, N = 2, 2
    assert env.action_space.shape == (M * N + 3 * M * N + M,)
    k, alloc = env.split_action(np.zeros(env.action_space.shape))
    np.testing.assert_allclose(alloc["f_local"].sum(-1), s.f_local_max_hz)  # 2 x 0.5 shares, normalised
    np.testing.assert_allclose(alloc["power"], 0.5 * s.p_max_w)
    np.testing.assert_allclose(alloc["f_edge"].sum(), s.f_edge_max_hz)
    big = np.full(env.action_space.shape, 30.0)
    big[: M * N] = [0, 33, 0, 33]
    env.reset(seed=1)
    for _ in range(20):
        _, _, _, _, info = env.step(big)
        tr = info["slots"]
        assert np.all(tr["f_local"].sum(-1) <= s.f_local_max_hz * (1 + 1e-9))
        assert np.all(tr["f_edge"].sum((-2, -1)) <= s.f_edge_max_hz * (1 + 1e-9))
        assert np.all(tr["power"] <= s.p_max_w)
        cap = shannon_rate(
            tr["power"], tr["gain"], bandwidth_hz=s.bandwidth_hz / M, noise_psd_w_per_hz=s.noise_psd_w_per_hz
        )
        assert np.all(tr["rate"].sum(-1) <= cap * (1 + 1e-9) + 1e-6)
        # the agent's power is spent only when something is queued for transmission
        assert np.all((tr["power"] > 0) <= (tr["Q_tx"].sum(-1) > 0))


def test_vector_env_matches_its_single_env_spaces_and_autoresets():
    from splitrl.worlds.lyappo.env import LyaPPOVectorEnv

    v = LyaPPOVectorEnv({**SMALL, "episode_periods": 3, "reward_scale": 0.5}, num_envs=3)
    obs, _ = v.reset(seed=4)
    assert obs.shape == (3, v.single_observation_space.shape[0])
    nv = v.single_action_space.nvec
    single = LyaPPOEnv(**SMALL)
    rewards = []
    for t in range(4):
        obs, r, term, trunc, info = v.step(np.tile(nv - 1, (3, 1)))
        rewards.append(r)
        assert all(single.observation_space.contains(o) for o in obs)
        assert not term.any()
        assert trunc.all() == (t == 2)
    np.testing.assert_array_equal(rewards[3], 0.0)  # the autoreset step
    assert np.all(rewards[0] <= 0)
    # same seed, same batch trajectory
    v2 = LyaPPOVectorEnv({**SMALL, "episode_periods": 3, "reward_scale": 0.5}, num_envs=3)
    v2.reset(seed=4)
    np.testing.assert_array_equal(v2.step(np.tile(nv - 1, (3, 1)))[1], rewards[0])
