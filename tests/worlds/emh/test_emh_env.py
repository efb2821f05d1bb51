"""The EMH-PPO world and its agent interfaces: eq. (8), task windows, time slots, APIs."""

import numpy as np
import pytest

from splitrl.core.errors import ScenarioError
from splitrl.worlds.emh.actions import decode_actions, encode_decisions
from splitrl.worlds.emh.env import EMHJointEnv, EMHMultiAgentEnv, learner_reward, parallel_env
from splitrl.worlds.emh.physics import path_gain, server_load, task_latency_energy, uplink_rates
from splitrl.worlds.emh.scenario import make_emh_scenario
from splitrl.worlds.emh.system import EMHSystem

L0 = 0.1
BASE = {"l0_s": L0}


def world(**kw):
    return EMHSystem(make_emh_scenario({**BASE, **kw}))


def test_window_reward_is_eq8_recomputed_from_the_physics():
    w = world(num_devices=3, num_channels=2, num_servers=2, fixed_tasks=7)
    w.reset(np.random.default_rng(3))
    s, N, X = w.scenario, 3, w.scenario.max_window
    rng = np.random.default_rng(0)
    window = np.array([5, 2, 4])
    point = rng.integers(0, w.num_points, (N, X))
    channel = rng.integers(0, 2, (N, X))
    server = rng.integers(0, 2, (N, X))
    power = rng.uniform(0.05, 1.0, (N, X))
    d, sh = w.distance.copy(), w.shadow_db.copy()
    info = w.step_window(window, point, channel, server, power)
    # independent recomputation, task position by task position
    gain = path_gain(d, sh)
    per_device = np.zeros(N)
    energy = 0.0
    for x in range(X):
        act = x < window
        share, bits = w.share[point[:, x]], np.where(act, w.tx_bits[point[:, x]], 0.0)
        rate = uplink_rates(power[:, x], gain, channel[:, x], bandwidth_hz=1e6, noise_w=1e-9, active=act & (bits > 0))
        load = server_load(server[:, x], act & (share < 1))
        lat, e, _ = task_latency_energy(
            share, bits, rate, power[:, x], load, l0_s=L0, total_macs=w.total_macs, zeta_j_per_mmac=1e-5
        )
        per_device += np.where(act, lat, 0.0)
        energy += np.where(act, e, 0.0).sum()
    T = per_device.max()
    wait = (T - per_device).mean()
    W = window.mean()
    expected = -((T + s.waiting_weight * wait) / W + s.energy_weight / N * energy / W)
    assert info["reward"] == pytest.approx(expected, rel=1e-12)
    assert info["time_s"] == pytest.approx(T) and info["energy_j"] == pytest.approx(energy)
    assert info["idle_s"] == pytest.approx((T - per_device).sum())
    assert list(w.remaining) == [2, 5, 3] and info["tasks"] == 11


def test_windows_clip_to_remaining_tasks_and_the_episode_ends_when_all_are_done():
    w = world(num_devices=2, fixed_tasks=7, max_window=5)
    w.reset(np.random.default_rng(0))
    local = encode_decisions(w, 5, w.num_points - 1, 0, 0, 0.5)
    dec = decode_actions(w, local)
    infos = []
    while not w.done:
        infos.append(w.step_window(dec["window"], dec["point"], dec["channel"], dec["server"], dec["power"]))
    assert [i["tasks"] for i in infos] == [10, 4]
    # local-only: every task costs L_local = 5 L0 and zeta * MMACs, nothing is sent, nobody waits
    assert sum(i["time_s"] for i in infos) == pytest.approx(7 * 5 * L0)
    assert sum(i["energy_j"] for i in infos) == pytest.approx(14 * 1e-5 * w.total_macs / 1e6)
    assert all(i["idle_s"] == 0 for i in infos)


def test_time_based_slots_carry_tasks_over_and_return_minus_makespan_plus_energy():
    w = world(num_devices=2, fixed_tasks=3, mdp="time", slot_ms=120.0)
    w.reset(np.random.default_rng(0))
    local = decode_actions(w, encode_decisions(w, None, w.num_points - 1, 0, 0, 0.5))
    infos = []
    while not w.done:
        infos.append(w.step_slot(local["point"], local["channel"], local["server"], local["power"]))
    # 3 local tasks of 0.5 s each: 1.5 s, i.e. 12.5 slots of 0.12 s -> 13 slots, exact finish time
    assert len(infos) == 13
    assert sum(i["time_s"] for i in infos) == pytest.approx(1.5)
    e_task = 1e-5 * w.total_macs / 1e6
    assert sum(i["reward"] for i in infos) == pytest.approx(-(13 * 0.12 + 50 / 2 * 6 * e_task))
    assert sum(i["tasks"] for i in infos) == 6


def test_co_channel_offloading_is_slower_than_on_separate_channels():
    w = world(num_devices=2, fixed_tasks=5, fixed_distance_m=50.0, shadow_std_db=0.0, input_bits_per_element=8.0)
    w.reset(np.random.default_rng(0))
    same = decode_actions(w, encode_decisions(w, 5, 0, 0, np.array([[0], [1]]), 0.1))
    t_same = w.step_window(**{k: same[k] for k in ("window", "point", "channel", "server", "power")})["time_s"]
    w.reset(np.random.default_rng(0))
    sep = decode_actions(w, encode_decisions(w, 5, 0, np.array([[0], [1]]), np.array([[0], [1]]), 0.1))
    t_sep = w.step_window(**{k: sep[k] for k in ("window", "point", "channel", "server", "power")})["time_s"]
    assert t_same > 3 * t_sep


def test_action_encoding_round_trips_and_power_respects_the_limit():
    w = world()
    rng = np.random.default_rng(1)
    win = rng.integers(1, 6, 3)
    pts = rng.integers(0, w.num_points, (3, 5))
    ch, sv = rng.integers(0, 2, (3, 5)), rng.integers(0, 2, (3, 5))
    p = rng.uniform(0.01, 0.99, (3, 5))
    dec = decode_actions(w, encode_decisions(w, win, pts, ch, sv, p))
    assert (dec["window"] == win).all() and (dec["point"] == pts).all()
    assert (dec["channel"] == ch).all() and (dec["server"] == sv).all()
    np.testing.assert_allclose(dec["power"], p, rtol=1e-6)
    wild = decode_actions(w, rng.normal(0, 100, (3, 21)))
    assert (wild["power"] <= 1.0).all() and (wild["power"] >= 1e-3).all()
    assert wild["point"].max() < w.num_points and wild["window"].min() >= 1


def test_seeded_episodes_repeat_and_every_agent_sees_the_global_state():
    env = EMHMultiAgentEnv({**BASE})

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(5)
        out = [obs["md_0"]]
        while env.agents:
            acts = {
                a: env.action_spaces[a].sample() * 0 + rng.normal(0, 1, env.action_spaces[a].shape) for a in env.agents
            }
            obs, rew, term, trunc, info = env.step(acts)
            assert len({float(r) for r in rew.values()}) == 1
            if obs:
                assert all(np.array_equal(o, obs["md_0"]) for o in obs.values())
                out.append(obs["md_0"])
        return np.array(out)

    a, b = rollout(7), rollout(7)
    np.testing.assert_array_equal(a, b)
    assert a.shape[1] == 9 and not np.array_equal(a, rollout(8)[: len(a)])  # (X, d, gain dB) x 3 devices


def test_rllib_and_pettingzoo_api_checks():
    from pettingzoo.test import parallel_api_test
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    for mdp in ("task", "time"):
        check_multiagent_environments(EMHMultiAgentEnv({**BASE, "mdp": mdp}))
        parallel_api_test(parallel_env({**BASE, "mdp": mdp, "num_devices": 4}), num_cycles=100)


def test_joint_env_is_the_devices_actions_concatenated():
    joint = EMHJointEnv({**BASE})
    multi = EMHMultiAgentEnv({**BASE})
    rng = np.random.default_rng(2)
    a = rng.normal(0, 3, joint.action_space.shape)
    per = joint.split(a)
    joint.reset(seed=4)
    multi.reset(seed=4)
    _, r_joint, *_ = joint.step(a)
    _, r_multi, *_ = multi.step({f"md_{n}": per[n] for n in range(3)})
    assert r_joint == pytest.approx(r_multi["md_0"])
    assert len(joint.nvec) == 3 * 16 and joint.num_continuous == 15


def test_learner_reward_compression_is_monotone_and_linear_for_small_costs():
    costs = np.array([0.0, 0.1, 1.0, 5.0, 50.0, 1e4, 1e8])
    shaped = [learner_reward({"reward": -c}, (1.0, 20.0)) for c in costs]
    assert all(np.diff(shaped) < 0)
    assert shaped[1] == pytest.approx(-0.1, rel=0.01) and shaped[-1] > -20 * 16
    assert learner_reward({"reward": -3.0}, (0.1, None)) == pytest.approx(-0.3)


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("num_devices", 0, "must be >= 1"),
        ("mdp", "slots", "task, time"),
        ("partitioning", "grid", "operator"),
        ("model", "lenet", "unknown model"),
        ("p_floor", 2, "(0, 1]"),
        ("fixed_tasks", 0, ">= 1"),
        ("num_servrs", 2, "unknown key"),
        ("distance_min_m", 500, "distance_max_m"),
        ("observe_gain", "yes", "true or false"),
        ("feature_bits_per_element", 0, "> 0"),
        ("queue_obs_cap", 0, "> 0 or null"),
        ("queue_obs_cap", "many", "queue_obs_cap"),
    ],
)
def test_bad_scenario_values_name_the_key(key, value, fragment):
    with pytest.raises(ScenarioError) as err:
        make_emh_scenario({key: value})
    assert err.value.key == key and fragment in str(err.value)


def test_vertical_partitioning_uses_the_layer_chain():
    op, vert = world(), world(partitioning="vertical")
    assert op.num_points == 85 and vert.num_points < op.num_points
    assert vert.share[0] == 0 and vert.share[-1] == 1 and vert.tx_bits[-1] == 0
    assert op.tx_bits[0] == vert.tx_bits[0] == 3 * 224 * 224 * 0.5  # an encoded frame by default


def test_transfer_sizes_follow_the_bits_per_element():
    from splitrl.dnn import load_profile

    prof = load_profile("resnet50")
    raw = world(input_bits_per_element=8.0, feature_bits_per_element=32.0)
    enc = world(input_bits_per_element=0.25, feature_bits_per_element=4.0)
    assert raw.tx_bits[0] == 3 * 224 * 224 * 8 and enc.tx_bits[0] == 3 * 224 * 224 * 0.25
    for p in prof["partition_points"][1:-1]:  # every cut: the float32 bytes of its operators
        i = p["index"] - 1
        assert raw.tx_bits[i] == pytest.approx(8 * p["tx_bytes"])
        assert enc.tx_bits[i] == pytest.approx(p["tx_bytes"] / 4 * 4.0)
    assert raw.tx_bits[-1] == enc.tx_bits[-1] == 0.0


def test_the_state_holds_each_devices_gain_in_db_when_observed():
    w = world(fixed_distance_m=20.0)
    w.reset(np.random.default_rng(3))
    obs = w.observation()
    gain_db = -30 * np.log10(20.0) + w.shadow_db  # (d_hat / d)^h with 8 dB shadowing, in dB
    np.testing.assert_allclose(obs[6:9] * 60.0, gain_db, rtol=1e-5)
    blind = world(fixed_distance_m=20.0, observe_gain=False)
    blind.reset(np.random.default_rng(3))
    np.testing.assert_array_equal(blind.observation(), obs[:6])
    assert blind.obs_dim == 6 and w.obs_dim == 9


def test_a_capped_queue_feature_gives_long_queues_the_state_of_the_cap():
    obs = {}
    for tasks in (20, 50, 200):
        for cap in (None, 50):
            w = world(fixed_tasks=tasks, queue_obs_cap=cap)
            w.reset(np.random.default_rng(3))
            obs[tasks, cap] = w.observation()
    np.testing.assert_allclose(obs[200, None][:3], 200 / 50)  # X_n / task_mean
    np.testing.assert_allclose(obs[20, 50][:3], 20 / 50)  # min(X_n, cap) / cap
    np.testing.assert_array_equal(obs[200, 50], obs[50, 50])  # 200 tasks look like 50
    np.testing.assert_array_equal(obs[200, 50][3:], obs[200, None][3:])  # the rest of the state as before


def test_infos_carry_the_episode_totals():
    # RLlib may give a callback only an episode's last chunk: the totals must be in the infos
    env = EMHMultiAgentEnv({**BASE, "mdp": "time", "slot_ms": 100.0, "fixed_tasks": 4})
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    steps = []
    while env.agents:
        *_, infos = env.step({a: rng.normal(0, 1, 4) for a in env.agents})
        steps.append(infos["md_0"])
    last = steps[-1]["episode"]
    for key in ("reward", "time_s", "energy_j", "tasks", "idle_s"):
        assert last[key] == pytest.approx(sum(s[key] for s in steps))
    assert last["tasks"] == 12


def test_reference_schedules_coordinate_channels_as_documented():
    from splitrl.worlds.emh.baselines import CSISharing, RoundRobin
    from splitrl.worlds.emh.physics import path_gain, uplink_rates

    w = world(fixed_tasks=10)
    w.reset(np.random.default_rng(5))
    rr = decode_actions(w, RoundRobin().act(w, w.observation()))
    sending = rr["point"] == 0
    assert (sending.sum(0) == 2).all()  # C = 2 transmitters at every task position ...
    for x in range(5):  # ... never on the same channel
        assert len(set(rr["channel"][sending[:, x], x])) == 2
    cs = decode_actions(w, CSISharing(0.2).act(w, w.observation()))
    assert (cs["point"] == 0).all()
    g = path_gain(w.distance, w.shadow_db)[:, None]
    rx = cs["power"] * g
    for x in range(5):
        ch = cs["channel"][:, x]
        shared = ch == np.bincount(ch).argmax()  # the channel two devices share
        assert shared.sum() == 2 and rx[shared, x] == pytest.approx(rx[shared, x][0], rel=1e-6)
        assert cs["power"][shared, x].max() == pytest.approx(0.2, rel=1e-6)  # the weaker at 0.2 P_limit
        rate = uplink_rates(cs["power"][:, x], g[:, 0], ch, bandwidth_hz=1e6, noise_w=1e-9)
        assert rate[shared] == pytest.approx(rate[shared][0], rel=1e-6)  # equal SINR, just under 1
        assert rate[shared][0] < 1e6 < rate[~shared][0]


def test_evaluation_reports_the_mean_and_spread_of_its_seeded_episodes():
    from splitrl.worlds.emh.baselines import RoundRobin
    from splitrl.worlds.emh.evaluate import evaluate_emh_policy

    ev = {"episodes": 1, "fixed_tasks": 12, "fixed_distance_m": None}
    one = [evaluate_emh_policy(RoundRobin(), BASE, {**ev, "seed": s}) for s in (3, 4)]
    both = evaluate_emh_policy(RoundRobin(), BASE, {**ev, "episodes": 2, "seed": 3})
    assert one[0]["latency"] != one[1]["latency"]  # random distances: the episodes differ
    for key in ("latency", "energy", "reward"):
        vals = [m[key] for m in one]
        assert both[key] == pytest.approx(np.mean(vals)) and both[f"{key}_std"] == pytest.approx(np.std(vals))
        assert one[0][f"{key}_std"] == 0.0


def test_points_off_the_pareto_front_never_lower_latency_or_energy():
    w = world(feature_bits_per_element=32.0)  # float32 features: a richer front
    front = w.pareto_points()
    share, bits = w.share[: w.num_points], w.tx_bits[: w.num_points]
    assert front[0] == 0 and front[-1] == w.num_points - 1  # raw input and fully local
    assert all(np.diff(share[front]) > 0) and all(np.diff(bits[front]) < 0)
    rng = np.random.default_rng(5)
    w.reset(rng)
    N, X = w.scenario.num_devices, 400
    point = rng.integers(0, w.num_points, (N, X))
    channel = rng.integers(0, w.scenario.num_channels, (N, X))
    server = rng.integers(0, w.scenario.num_servers, (N, X))
    power = rng.uniform(0.01, 1.0, (N, X))
    active = np.ones((N, X), dtype=bool)
    # every point replaced by a front point that matches or beats it in share and bits
    dominating = np.array(
        [next(j for j in front if share[j] <= share[i] and bits[j] <= bits[i]) for i in range(w.num_points)]
    )
    lat, energy, _ = w.evaluate_tasks(point, channel, server, power, active)
    lat2, energy2, _ = w.evaluate_tasks(dominating[point], channel, server, power, active)
    # a dominating point keeps the device sending (bits > 0) and using a server (share < 1)
    # wherever the original did, so nobody's interference or server load changes
    assert np.all(lat2 <= lat + 1e-12) and np.all(energy2 <= energy + 1e-15)
    assert lat2.sum() < lat.sum() and energy2.sum() < energy.sum()


def _front(model, **kw):
    w = world(model=model, **kw)
    return {(float(w.share[i]), float(w.tx_bits[i])) for i in w.pareto_points()}, w


def _on_lower_hull(p, points):
    """Whether ``p`` is a vertex of the lower-left convex hull of ``points`` (share, bits): the
    points that minimise some ``a * share + b * bits`` with ``a, b > 0``.  Not one if a single
    point or a segment between two points lies at or below it."""
    for q in points:
        if q != p and q[0] <= p[0] and q[1] <= p[1]:
            return False
    for q1 in points:
        for q2 in points:
            if q1[0] < p[0] < q2[0]:
                t = (p[0] - q1[0]) / (q2[0] - q1[0])
                if q1[1] + t * (q2[1] - q1[1]) <= p[1]:
                    return False
    return True


@pytest.mark.parametrize("model", ["resnet50", "googlenet", "mobilenet_v2"])
def test_operator_cuts_add_no_front_point_over_the_layer_chain_with_encoded_inputs(model):
    """docs/results/emh.md: with the default transfer model (an encoded 9.4 kB input, 8-bit features)
    every operator-grained cut is matched or beaten in (share, bits) by a layer-chain cut, so
    vertical partitioning reaches the same optimum."""
    op, vert = _front(model, partitioning="operator")[0], _front(model, partitioning="vertical")[0]
    assert op == vert and len(vert) >= 3


@pytest.mark.parametrize("model, extra", [("resnet50", 1), ("googlenet", 4), ("mobilenet_v2", 0)])
def test_raw_inputs_give_operator_only_front_points_but_none_a_lone_task_would_pick(model, extra):
    """docs/results/emh.md: sending the raw input at the features' 8 bits per element, cuts across a
    block's branches (ResNet-50's downsampling skip, GoogLeNet's inception branches) add front
    points the layer chain lacks; none lies on the lower convex hull of the cut set, and a lone
    task's cost (eqs. 2-3, linear in share and bits at a given rate, power and load) is least at
    a hull point."""
    raw = {"input_bits_per_element": 8.0}
    op, w = _front(model, partitioning="operator", **raw)
    vert = _front(model, partitioning="vertical", **raw)[0]
    only = op - vert
    assert len(only) == extra
    cuts = list(zip(w.share[: w.num_points].tolist(), w.tx_bits[: w.num_points].tolist()))
    assert not any(_on_lower_hull(p, cuts) for p in only)
    # the check can say yes: both ends always, and MobileNetV2's interior layer-chain cuts
    assert _on_lower_hull(cuts[0], cuts) and _on_lower_hull(cuts[-1], cuts)
    interior = sum(_on_lower_hull(p, cuts) for p in vert - {cuts[0], cuts[-1]})
    assert interior == (3 if model == "mobilenet_v2" else 0)


def test_action_gates_mark_exactly_the_entries_that_do_not_act():
    """An entry gated off (slot x >= W) can take any value without changing the window's outcome;
    every entry the gates keep changes it (H-PPO's joint action; per agent it is one block)."""
    from splitrl.worlds.emh.actions import action_gates

    joint = EMHJointEnv({**BASE, "fixed_tasks": 20})
    s, N = joint.scenario, 3
    gates = action_gates(s, N)
    nd = len(joint.nvec)
    assert len(gates["discrete"]) == nd and len(gates["continuous"]) == joint.num_continuous
    assert action_gates(make_emh_scenario({**BASE, "mdp": "time"})) is None
    rng = np.random.default_rng(3)

    def outcome(a, seed=9):
        joint.reset(seed=seed)
        info = joint.world.step_window(**decode_actions(joint.world, joint.split(a)))
        return info["time_s"], info["energy_j"], info["reward"]

    a = np.concatenate([rng.integers(0, joint.nvec), rng.normal(0, 2, joint.num_continuous)]).astype(float)
    block = nd // N
    a[[n * block + 1 + 3 * x for n in range(N) for x in range(s.max_window)]] = 0  # offload the raw input
    a[[n * block for n in range(N)]] = [3, 3, 0]  # windows W = 4, 4, 1: an active task never runs alone
    base = outcome(a)
    for i in range(len(a)):
        g = gates["discrete"][i] if i < nd else gates["continuous"][i - nd]
        if g is None:
            continue  # window entries: they act
        active = a[g[0]] >= g[1]
        changed = []
        for v in [(a[i] + k) % joint.nvec[i] for k in (1, 2)] if i < nd else [a[i] + 3.0, a[i] - 3.0]:
            b = a.copy()
            b[i] = v
            changed.append(outcome(b) != base)
        assert any(changed) == active, (i, g, active)
