"""EMH-PPO on RLlib: the shared embedding network exists once, is optimised once and learns."""

import numpy as np
import pytest
import torch

from splitrl.platform.config import resolve_config

pytestmark = pytest.mark.timeout(300)


def _cfg(name, **scenario):
    return resolve_config(
        {
            "scenario": {"world": "emh", "l0_s": 0.1, **scenario},
            "algorithm": {
                "name": name,
                "train_batch_size": 64,
                "minibatch_size": 32,
                "num_epochs": 1,
                "lr": 1e-3,
                "reward_clip": 20.0,
                "point_prior_temperature": 0.3,
                "grad_clip": None,
            },
            "stop": {"iterations": 1},
            "tracking": {"enabled": False},
            "resources": {"num_env_runners": 0, "num_envs_per_env_runner": 1},
        }
    )


def test_shared_encoder_and_critic_are_one_tensor_each_but_heads_are_per_agent():
    from splitrl.worlds.emh.algorithms import module_spec

    multi = module_spec(_cfg("emh-ppo")).build()
    mods = [multi[f"md_{n}"] for n in range(3)]
    enc = [m.encoder[0][0].weight for m in mods]
    assert enc[0] is enc[1] is enc[2]
    assert mods[0].critic is mods[1].critic is mods[2].critic
    assert mods[0].actor[0].weight is not mods[1].actor[0].weight
    assert [lin.out_features for lin in mods[0].encoder[0] if isinstance(lin, torch.nn.Linear)] == [512, 256]
    assert isinstance(mods[0].encoder[1], torch.nn.GELU)
    assert [lin.out_features for lin in mods[0].actor if isinstance(lin, torch.nn.Linear)][:3] == [256, 128, 64]
    assert mods[0].critic[-1].out_features == 5  # one value per task slot of the window
    # MAHPPO: own embedding per agent, critic still shared
    mah = module_spec(_cfg("mahppo")).build()
    assert mah["md_0"].encoder[0][0].weight is not mah["md_1"].encoder[0][0].weight
    assert mah["md_0"].critic is mah["md_1"].critic


@pytest.mark.parametrize("name", ["emh-ppo", "mahppo"])
def test_joint_forward_equals_each_agents_own_forward_values_and_gradients(name):
    """The multi-agent module's one-pass forward (shared encoder and critic run once on all
    agents' rows) gives each agent's own forward's action inputs and critic values, and the
    gradients of a loss of them on every parameter are the same (float64, agents with different
    row counts)."""
    from ray.rllib.core.columns import Columns

    from splitrl.worlds.emh.algorithms import module_spec

    multi = module_spec(_cfg(name)).build()
    for m in multi.values():
        m.double()
    g = torch.Generator().manual_seed(0)
    batch = {f"md_{n}": {Columns.OBS: torch.rand(20 + 7 * n, 9, generator=g, dtype=torch.float64)} for n in range(3)}
    weights = {mid: torch.randn(len(b[Columns.OBS]), 2, generator=g, dtype=torch.float64) for mid, b in batch.items()}

    def loss_and_grads(outs):
        loss = 0.0
        for mid, out in outs.items():
            d, v = out[Columns.ACTION_DIST_INPUTS], out[Columns.VF_PREDS]
            loss = loss + (weights[mid][:, 0] * d.sin().sum(-1)).mean() + (weights[mid][:, 1] * v).mean()
        params = list({id(p): p for m in multi.values() for p in m.parameters()}.values())
        return [o[k] for o in outs.values() for k in sorted(o)], torch.autograd.grad(loss, params, allow_unused=True)

    joint = multi.forward_train(batch)
    both = {Columns.ACTION_DIST_INPUTS, Columns.VF_PREDS}
    assert set(joint) == set(batch) and all(set(o) == both for o in joint.values())
    own = {
        mid: {
            Columns.ACTION_DIST_INPUTS: multi[mid].forward_train(b)[Columns.ACTION_DIST_INPUTS],
            Columns.VF_PREDS: multi[mid].compute_values(b),
        }
        for mid, b in batch.items()
    }
    (out_j, grad_j), (out_o, grad_o) = loss_and_grads(joint), loss_and_grads(own)
    for a, b in zip(out_j, out_o):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grad_j, grad_o):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # exploration: the same action inputs, no values, no graph
    explore = multi.forward_exploration(batch)
    for mid in batch:
        got = explore[mid][Columns.ACTION_DIST_INPUTS]
        assert set(explore[mid]) == {Columns.ACTION_DIST_INPUTS} and not got.requires_grad
        torch.testing.assert_close(got, own[mid][Columns.ACTION_DIST_INPUTS].detach())


def test_initial_point_prior_follows_nominal_cost():
    from splitrl.worlds.emh.algorithms import module_spec
    from splitrl.worlds.emh.scenario import make_emh_scenario
    from splitrl.worlds.emh.system import EMHSystem

    cfg = _cfg("emh-ppo")
    multi = module_spec(cfg).build()
    m = multi["md_0"]
    with torch.no_grad():
        logits = m.actor(m.encoder(torch.zeros(1, 9)))[0]
    S = 85
    first_point = logits[5 : 5 + S].numpy()  # after the window-size branch
    cost = EMHSystem(make_emh_scenario(cfg["scenario"])).nominal_cost()
    assert int(first_point.argmax()) == int(cost.argmin()) == 0  # the encoded input: the lowest nominal cost
    # the logits start as -cost / T, up to the small contribution of the untrained layers
    np.testing.assert_allclose(first_point - first_point[0], -(cost - cost[0]) / 0.3, atol=0.3)


@pytest.mark.parametrize("name", ["emh-ppo", "h-ppo"])
def test_initial_window_prior_favours_full_windows_and_gates_are_wired(name):
    from splitrl.worlds.emh.algorithms import module_spec

    for logit, gated in ((2.0, True), (None, False)):
        cfg = _cfg(name)
        cfg["algorithm"].update(window_prior_logit=logit, slot_masking=gated)
        module = module_spec(cfg).build()
        sub = module if name == "h-ppo" else module["md_0"]
        with torch.no_grad():
            out = sub.forward_inference({"obs": torch.zeros(1, 9)})
        dist = sub.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
        block = 16  # per device: window size, then (point, channel, server) for 5 task slots
        windows = [0] if name == "emh-ppo" else [0, block, 2 * block]
        for j in windows:
            p = dist.entry_probs(j)[0].numpy()
            want = np.exp(logit or 0.0) / (np.exp(logit or 0.0) + 4)
            assert p[-1] == pytest.approx(want, abs=0.03), (j, p)
        assert bool(type(dist).gates_discrete) == gated


def test_one_training_step_updates_the_shared_encoder_once(ray_local):
    from splitrl.worlds.emh.algorithms import build_algo_config

    algo = build_algo_config(_cfg("emh-ppo")).build_algo()
    try:
        learner = algo.learner_group._learner
        multi = learner.module
        enc = multi["md_0"].encoder[0][0].weight
        critic = multi["md_0"].critic[0].weight
        # every parameter is registered with exactly one optimizer
        owners = {}
        for opt_name, opt in learner._named_optimizers.items():
            for group in opt.param_groups:
                for p in group["params"]:
                    owners.setdefault(id(p), []).append(opt_name)
        assert all(len(v) == 1 for v in owners.values())
        assert len(owners) == len({id(p) for m in multi.values() for p in m.parameters()})
        assert owners[id(enc)] == owners[id(critic)] == ["md_0_default_optimizer"]
        before = enc.detach().clone()
        head1 = multi["md_1"].actor[0].weight.detach().clone()
        result = algo.train()
        assert not torch.equal(before, enc.detach())
        assert multi["md_1"].encoder[0][0].weight is enc  # still one tensor after the update
        assert not torch.equal(head1, multi["md_1"].actor[0].weight.detach())
        assert np.isfinite(result["learners"]["md_0"]["policy_loss"])
        assert "latency" in result["env_runners"] and "waiting" in result["env_runners"]
    finally:
        algo.stop()


def test_fast_optimizer_step_equals_rllibs_with_finite_and_with_nan_gradients(ray_local):
    """The learner's one-check ``apply_gradients`` (splitrl.rl.fast_learner) leaves every
    parameter and optimizer state exactly where RLlib's own ``apply_gradients`` does, for finite
    gradients and for a gradient with NaN/inf (which falls back to RLlib's zeroing)."""
    import copy

    from ray.rllib.core.learner.torch.torch_learner import TorchLearner

    from splitrl.worlds.emh.algorithms import build_algo_config

    algo = build_algo_config(_cfg("emh-ppo")).build_algo()
    try:
        learner = algo.learner_group._learner
        params = learner._params
        opts = [learner.get_optimizer(m, n) for m, names in learner._module_optimizers.items() for n in names]
        start = ({k: p.detach().clone() for k, p in params.items()}, [copy.deepcopy(o.state_dict()) for o in opts])
        g = torch.Generator().manual_seed(0)
        for poison in (False, True):
            grads = {k: torch.randn(p.shape, generator=g) for k, p in params.items()}
            if poison:
                k = next(iter(grads))
                grads[k].view(-1)[0], grads[k].view(-1)[1] = float("nan"), float("inf")
            after = []
            for step in (type(learner).apply_gradients, TorchLearner.apply_gradients):
                with torch.no_grad():
                    for k, p in params.items():
                        p.copy_(start[0][k])
                for o, st in zip(opts, start[1]):
                    o.load_state_dict(copy.deepcopy(st))
                step(learner, {k: v.clone() for k, v in grads.items()})
                after.append(
                    ({k: p.detach().clone() for k, p in params.items()}, [o.state_dict()["state"] for o in opts])
                )
            (p_fast, s_fast), (p_rllib, s_rllib) = after
            assert all(torch.equal(p_fast[k], p_rllib[k]) for k in params)
            assert all(torch.isfinite(p).all() for p in p_fast.values())
            assert not torch.equal(p_fast[next(iter(params))], start[0][next(iter(params))])
            for a, b in zip(s_fast, s_rllib):
                assert a.keys() == b.keys() and all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    finally:
        algo.stop()


def test_counting_env_runner_reports_rllibs_numbers_and_samples_the_same(ray_local):
    """Two samples of 40 env steps each, same seed, by RLlib's MultiAgentEnvRunner and by the
    counting one: the same episodes (observations, actions, rewards) and the same reduced
    env/agent/module/episode counters, per sample and lifetime."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from splitrl.rl.env_runners import CountingMultiAgentEnvRunner
    from splitrl.worlds.emh.algorithms import build_algo_config

    config = build_algo_config(_cfg("emh-ppo"))
    assert config.env_runner_cls is CountingMultiAgentEnvRunner
    runs = []
    for cls in (CountingMultiAgentEnvRunner, MultiAgentEnvRunner):
        torch.manual_seed(0)
        runner = cls(config=config.copy(copy_frozen=False))
        out = []
        for _ in range(2):
            episodes = runner.sample(num_timesteps=40, random_actions=False)
            metrics = runner.get_metrics()
            flat = {}
            for key in (
                "num_env_steps_sampled",
                "num_env_steps_sampled_lifetime",
                "num_episodes",
                "num_episodes_lifetime",
                "num_agent_steps_sampled",
                "num_agent_steps_sampled_lifetime",
                "num_module_steps_sampled",
                "num_module_steps_sampled_lifetime",
            ):
                value = metrics.get(key)
                value = value.peek() if hasattr(value, "peek") else value
                if isinstance(value, dict):
                    value = {k: (v.peek() if hasattr(v, "peek") else v) for k, v in value.items()}
                flat[key] = value
            data = [
                (e.agent_steps(), e.get_return(), [np.asarray(e.get_observations(-1)[a]) for a in sorted(e.agent_ids)])
                for e in episodes
            ]
            out.append((flat, data))
        runner.stop()
        runs.append(out)
    for (fa, da), (fb, db) in zip(*runs):
        assert fa == fb and fa["num_env_steps_sampled"] >= 40
        assert sorted(fa["num_agent_steps_sampled"]) == ["md_0", "md_1", "md_2"]
        assert sum(fa["num_module_steps_sampled"].values()) == 3 * fa["num_env_steps_sampled"]
        assert len(da) == len(db)
        for (na, ra, oa), (nb, rb, ob) in zip(da, db):
            assert na == nb and ra == pytest.approx(rb, abs=0)
            assert all(np.array_equal(x, y) for x, y in zip(oa, ob))


def test_fused_adam_is_the_for_loop_adams_update_up_to_rounding():
    from splitrl.rl.fast_learner import adam

    g = torch.Generator().manual_seed(1)
    shapes = [(512, 9), (512,), (256, 512), (256,), (455, 64), (455,)]
    init = [torch.randn(s, generator=g) for s in shapes]
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(50)]
    runs = []
    for make in (adam, torch.optim.Adam):
        ps = [p.clone().requires_grad_(True) for p in init]
        opt = make(ps)
        for group in opt.param_groups:
            group["lr"] = 1e-3
        for step in grads:
            for p, gr in zip(ps, step):
                p.grad = gr.clone()
            opt.step()
        runs.append(ps)
    assert runs[0][0] is not runs[1][0]
    for a, b, p0 in zip(*runs, init):
        moved = (b - p0).detach().abs().max()
        assert moved > 1e-3  # 50 steps of lr 1e-3 moved every tensor
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(moved))


@pytest.mark.parametrize("name", ["emh-ppo", "h-ppo"])
def test_window_entropy_bonus_keeps_the_window_head_exploring(ray_local, name):
    """The same first batch (same seed), one update with and without the window bonus: with it,
    the window-size entropy on fresh states ends higher, and the learner reports it."""
    from splitrl.worlds.emh.algorithms import build_algo_config
    from splitrl.worlds.emh.scenario import make_emh_scenario
    from splitrl.worlds.emh.system import EMHSystem

    cfg = _cfg(name)
    world = EMHSystem(make_emh_scenario(cfg["scenario"]))
    obs = []
    for seed in range(16):
        world.reset(np.random.default_rng(seed))
        obs.append(world.observation())
    obs = torch.as_tensor(np.stack(obs), dtype=torch.float32)
    after = {}
    for coeff in (0.0, 1.0):
        cfg["algorithm"]["window_entropy_coeff"] = coeff
        algo = build_algo_config(cfg).build_algo()
        try:
            result = algo.train()
            mid = "default_policy" if name == "h-ppo" else "md_1"
            module = algo.learner_group._learner.module[mid]
            assert np.isfinite(result["learners"][mid]["window_entropy"])
            with torch.no_grad():
                out = module.forward_inference({"obs": obs})
            dist = module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
            after[coeff] = float(dist.gate_entropy().mean())
        finally:
            algo.stop()
    assert after[1.0] > after[0.0] + 1e-3, after


def test_window_entropy_schedule_follows_sampled_env_steps_across_a_restore(ray_local, tmp_path):
    """``window_entropy_coeff: [[0, 1], [S, 0]]``: the coefficient every agent's loss uses is the
    schedule at the lifetime count of sampled env steps, from the first update on and also in the
    first update after a save and restore into a new algorithm (the count continues there), and
    ``train``'s metrics report it."""
    from splitrl import worlds
    from splitrl.platform.loop import curate
    from splitrl.worlds.emh.algorithms import build_algo_config

    span = 1000
    cfg = _cfg("emh-ppo")
    cfg["algorithm"]["window_entropy_coeff"] = [[0, 1.0], [span, 0.0]]
    cfg["algorithm"]["minibatch_size"] = cfg["algorithm"]["train_batch_size"]  # one loss call per update
    seen = []
    for restore in (False, True):
        algo = build_algo_config(cfg).build_algo()
        try:
            if restore:
                algo.restore_from_path(str(tmp_path / "ckpt"))
            result = algo.train()
            steps = result["num_env_steps_sampled_lifetime"]
            want = float(np.interp(steps, [0, span], [1.0, 0.0]))
            for n in range(3):
                assert result["learners"][f"md_{n}"]["curr_window_entropy_coeff"] == pytest.approx(want, abs=1e-6)
                sched = algo.learner_group._learner.window_entropy_schedulers[f"md_{n}"]
                assert float(sched.get_current_value()) == pytest.approx(want, abs=1e-6)
            assert curate(result, worlds.get("emh"), elapsed_s=1.0, steps0=0.0, time0=0.0, reward_scale=1.0)[
                "learner/window_entropy_coeff"
            ] == pytest.approx(want, abs=1e-6)
            seen.append(steps)
            if not restore:
                algo.save_to_path(str(tmp_path / "ckpt"))
        finally:
            algo.stop()
    assert 64 <= seen[0] < seen[1] < span, seen  # the restored run counts on from the first


@pytest.mark.parametrize("world", ["lyappo", "emh-ppo", "h-ppo"])
def test_entropy_schedule_holds_in_the_update_that_uses_it(ray_local, world):
    """``entropy_coeff: [[0, 1], [S, 0]]`` (RLlib's own schedule): the value every loss call reads is
    the schedule at the env steps sampled so far, in the first update too (RLlib alone would still
    hold the initial 1.0 there), for the LyaPPO world's PPO and the EMH learners alike."""
    if world == "lyappo":
        from splitrl.worlds.lyappo.algorithms import build_algo_config

        cfg = resolve_config(
            {
                "scenario": {"num_devices": 2, "episode_periods": 20},
                "algorithm": {"name": "lyappo", "train_batch_size": 64, "minibatch_size": 32, "num_epochs": 1},
                "stop": {"iterations": 1},
                "tracking": {"enabled": False},
                "resources": {"num_env_runners": 0, "num_envs_per_env_runner": 1},
            }
        )
    else:
        from splitrl.worlds.emh.algorithms import build_algo_config

        cfg = _cfg(world)
    span = 1000
    cfg["algorithm"]["entropy_coeff"] = [[0, 1.0], [span, 0.0]]
    config = build_algo_config(cfg)
    used = []

    class Recording(config.learner_class):
        def compute_loss_for_module(self, *, module_id, **kwargs):
            used.append(float(self.entropy_coeff_schedulers_per_module[module_id].get_current_value()))
            return super().compute_loss_for_module(module_id=module_id, **kwargs)

    algo = config.learners(learner_class=Recording).build_algo()
    try:
        for _ in range(2):
            used.clear()
            steps = algo.train()["num_env_steps_sampled_lifetime"]
            assert used and np.allclose(used, np.interp(steps, [0, span], [1.0, 0.0])), (steps, used)
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["h-ppo", "mahppo"])
def test_baseline_agents_train_one_step(ray_local, name):
    from splitrl.worlds.emh.algorithms import build_algo_config

    algo = build_algo_config(_cfg(name)).build_algo()
    try:
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] >= 64
        assert np.isfinite(result["env_runners"]["energy"])
    finally:
        algo.stop()


def test_a_trained_agent_is_compared_with_its_own_observation_keys():
    """compare takes the physics from its config, but each agent observes the world as it was
    trained to (queue cap, gains); an agent built without gains still runs beside one with them."""
    from splitrl.worlds.emh.algorithms import TrainedEMHPolicy, module_spec
    from splitrl.worlds.emh.evaluate import evaluate_emh_policy

    cfg = _cfg("emh-ppo", observe_gain=False, queue_obs_cap=20)
    seen = []

    class Recording(TrainedEMHPolicy):
        def act(self, world, obs):
            seen.append(obs)
            return super().act(world, obs)

    policy = Recording(module_spec(cfg).build(), cfg, "EMH-PPO")
    compare_scenario = {**cfg["scenario"], "observe_gain": True, "queue_obs_cap": None}
    m = evaluate_emh_policy(
        policy, compare_scenario, {"episodes": 1, "seed": 0, "fixed_tasks": 50, "fixed_distance_m": 50.0}
    )
    assert m["tasks"] == 150
    assert all(o.shape == (6,) for o in seen)  # no gains, as trained
    np.testing.assert_allclose(seen[0][:3], 1.0)  # 50 tasks under a cap of 20: full


def test_policy_names_carry_the_agents_variant():
    from splitrl import worlds

    policy_name = worlds.get("emh").policy_name

    assert policy_name(_cfg("emh-ppo")) == "EMH-PPO"
    assert policy_name(_cfg("h-ppo", partitioning="vertical")) == "H-PPO (vertical)"
    assert policy_name(_cfg("emh-ppo", queue_obs_cap=50, observe_gain=False)) == "EMH-PPO (queue cap 50, no CSI)"
