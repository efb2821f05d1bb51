"""ENACHI's baselines and CLI: recomputed figures, the schemes' defining behaviour, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from splitrl.worlds.enachi.baselines import EFFECTDNN, SCCAO, EdgeOnly, Fixed
from splitrl.worlds.enachi.evaluate import evaluate_policy
from splitrl.worlds.enachi.scenario import make_enachi_scenario

SC = make_enachi_scenario({"num_devices": 2, "bandwidth_hz": 6e6, "episode_frames": 20}).to_dict()
EV = {"episodes": 3, "seed": 5, "frames": 20}


def test_device_only_spends_the_local_energy_and_scores_the_full_model():
    from splitrl.worlds.enachi.accuracy import load_table

    m = evaluate_policy(Fixed("Device-only", 18), SC, EV)
    s = make_enachi_scenario(SC)
    e = s.kappa * s.f_local_hz**2 * s.cycles_per_mac * s.tables().macs_local[-1]
    assert m["energy"] == pytest.approx(e, rel=1e-12) and m["energy_tx"] == 0.0
    assert m["miss_rate"] == 0.0 and m["fraction"] == 1.0
    assert abs(m["accuracy"] - load_table().full_accuracy) < 0.1  # 120 tasks of the full model
    # at a 250 ms deadline the local run (255.6 ms) misses every task and still spends the energy
    late = evaluate_policy(Fixed("Device-only", 18), {**SC, "deadline_s": 0.25}, EV)
    assert late["accuracy"] == 0.0 and late["miss_rate"] == 1.0 and late["energy"] == pytest.approx(e)


def test_schemes_behave_as_described():
    edge = evaluate_policy(EdgeOnly(), SC, EV)
    assert edge["energy_local"] == 0.0 and edge["energy_tx"] > 0
    # SC-CAO at a zero price sends the whole planned fraction; a huge price sends nothing useful
    cheap = evaluate_policy(SCCAO(0.0), SC, EV)
    dear = evaluate_policy(SCCAO(1e6), SC, EV)
    assert cheap["accuracy"] > dear["accuracy"] and cheap["energy"] > dear["energy"]


def _run_effect_dnn(deadline_s, frames=200):
    from splitrl.worlds.enachi.system import ENACHISystem

    s = make_enachi_scenario(
        {
            "num_devices": 1,
            "bandwidth_hz": 3e6,
            "snr_spread_db": 0.0,
            "deadline_s": deadline_s,
            "accuracy_source": "surrogate",
        }
    )
    system = ENACHISystem(s, np.random.default_rng(3), batch=4)
    pol = EFFECTDNN()
    pol.reset(system, 0)
    planned, acc, energy, splits = [], [], [], []
    for _ in range(frames):
        split = pol.act(system, None)
        out = system.step(split, scheme=pol.scheme, allocation=pol.allocation(system, split))
        pol.observe(system, out)
        planned.append(np.minimum(pol.planned_time, 10 * deadline_s))
        acc.append(out["accuracy"])
        energy.append(out["energy_j"])
        splits.append(split)
    return s, pol, np.array(planned), np.array(acc), np.array(energy), np.array(splits)


def test_effect_dnn_keeps_an_average_not_a_hard_deadline():
    """EFFECT-DNN's latency queue: ``Y_T >= sum_t (T_t - T_d)`` (the [.]^+ recursion), and with the
    default V_E the queue settles within the episode (mean planned latency near T_d in the second
    half), so at a relaxed deadline it delivers part of the tasks -- about half of its all-or-nothing
    transmissions end late -- and at a stringent one it falls back to the local run's energy."""
    s, pol, planned, acc, _, _ = _run_effect_dnn(0.3)
    assert np.all(pol.Y >= (planned - 0.3).sum(0) - 1e-9)
    late = planned[100:].mean()
    assert 0.27 <= late <= 0.33  # settled at the average bound, not still climbing
    assert 0.2 <= acc[100:].mean() <= 0.7
    _, _, _, acc_tight, energy_tight, splits = _run_effect_dnn(0.1, frames=60)
    local_j = s.kappa * s.f_local_hz**2 * s.cycles_per_mac * s.tables().macs_local[-1]
    assert acc_tight.max() == 0.0
    assert (splits[-20:] == len(s.tables().points) - 1).all()  # the local run: the least latency
    assert energy_tight[-20:] == pytest.approx(local_j, rel=1e-9)


def test_the_data_builder_rejects_bad_flags_with_one_line(tmp_path, capsys):
    from splitrl.platform.cli import main

    out = tmp_path / "t.npz"
    assert main(["enachi-data", "build", "--epochs", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitrl: error: --epochs")
    assert not out.exists()


@pytest.mark.timeout(300)
def test_train_compare_and_the_figure_end_to_end(tmp_path, ray_local):
    """``splitrl train`` -> ``compare --checkpoint --json --plot`` at a tiny budget: the JSON holds
    every policy with the issue's keys, the figure is written."""
    import json

    import yaml

    from splitrl.platform.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "scenario": {"world": "enachi", "num_devices": 2, "bandwidth_hz": 6e6, "episode_frames": 4},
                "algorithm": {"hidden": [16], "train_batch_size": 16, "minibatch_size": 8, "num_epochs": 1},
                "evaluation": {"episodes": 2, "frames": 3},
                "stop": {"iterations": 1},
                "resources": {"num_env_runners": 0, "num_envs_per_env_runner": 2},
            }
        )
    )
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--no-compare", "--quiet"]) == 0
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    assert main(["compare", str(cfg), "--checkpoint", str(run), "--json", str(out), "--plot", str(png)]) == 0
    pol = json.loads(out.read_text())["policies"]
    assert list(pol)[0] == "ENACHI-PPO" and "ENACHI" in pol and "SC-CAO" in pol
    for m in pol.values():
        assert {"accuracy", "energy", "energy_local", "energy_tx", "miss_rate", "fraction", "reward"} <= set(m)
        assert 0.0 <= m["accuracy"] <= 1.0 and m["energy"] >= 0
    assert png.stat().st_size > 10_000
