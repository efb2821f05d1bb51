"""Baseline partition policies: what they choose and how they rank."""

import numpy as np

from splitrl.worlds.lyappo.baselines import FixedPolicy, GreedyPolicy, RandomPolicy
from splitrl.worlds.lyappo.env import LyaPPOEnv
from splitrl.worlds.lyappo.evaluate import evaluate_policy

SCEN = {"num_devices": 2, "episode_periods": 60}


def test_fixed_policies_choose_their_points():
    env = LyaPPOEnv(SCEN)
    env.reset(seed=0)
    top = env.action_space.nvec - 1
    np.testing.assert_array_equal(FixedPolicy("local").act(env, None), top)
    np.testing.assert_array_equal(FixedPolicy("edge").act(env, None), 0 * top)
    np.testing.assert_array_equal(FixedPolicy("mid").act(env, None), top // 2)
    np.testing.assert_array_equal(FixedPolicy([3, 5]).act(env, None), [3, 5, 3, 5])


def test_random_policy_is_seeded_and_covers_the_space():
    env = LyaPPOEnv(SCEN)
    a, b = RandomPolicy(), RandomPolicy()
    a.reset(env, 3), b.reset(env, 3)
    xa = np.array([a.act(env, None) for _ in range(300)])
    xb = np.array([b.act(env, None) for _ in range(300)])
    np.testing.assert_array_equal(xa, xb)
    assert np.all(xa.min(0) == 0) and np.all(xa.max(0) == env.action_space.nvec - 1)


def test_greedy_choice_is_optimal_in_its_own_lookahead():
    env = LyaPPOEnv(SCEN)
    env.reset(seed=4)
    for _ in range(5):
        env.step(env.action_space.nvec - 1)
    g = GreedyPolicy(lookahead=1, sweeps=1)
    g.reset(env, 0)
    state = g.rng.bit_generator.state
    action = g.act(env, None)
    # replay the policy's last coordinate (m=1, n=1) with the same look-ahead noise
    g.rng.bit_generator.state = state
    seeds = [g.rng.integers(2**63) for _ in range(4)]
    K = env.action_space.nvec[-1]
    cands = np.repeat(action.reshape(1, 2, 2), K, axis=0)
    cands[:, 1, 1] = np.arange(K)
    sim = env.system.replicate(K, np.random.default_rng(seeds[-1]))
    cost = -env.features.reward(sim.run_period(cands)["slots"])[0] + g.drain_cost(env, sim)
    assert cost[action[-1]] <= cost.min() + 1e-12 * abs(cost.min())


def test_greedy_beats_random_and_mid_fixed_points():
    res = {
        p.name: evaluate_policy(p, SCEN, episodes=1, seed=20)
        for p in (GreedyPolicy(), RandomPolicy(), FixedPolicy("mid"))
    }
    assert res["Greedy-Cov"]["reward"] > res["Random-Cov"]["reward"]
    assert res["Greedy-Cov"]["reward"] > res["Fix-Cov"]["reward"]
    assert res["Greedy-Cov"]["energy"] < res["Random-Cov"]["energy"]
