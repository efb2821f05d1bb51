"""The contract every world keeps with the platform, checked for every registered world.

Parametrised over ``splitrl.worlds.names()`` after importing every package under
``tests/plugin_worlds/`` (each registers itself), so a new world -- in ``splitrl/worlds/`` or as a
plug-in -- gets these checks without an edit here.
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.platform.config import explain, resolve_config

for _pkg in sorted((Path(__file__).parent / "plugin_worlds").iterdir()):
    if (_pkg / "__init__.py").is_file():
        importlib.import_module(f"plugin_worlds.{_pkg.name}")

NAMES = worlds.names()


def smoke(name: str, **sections) -> dict:
    """The world's tiny config, with ``sections`` merged in (no tracking, in-driver sampling)."""
    w = worlds.get(name)
    raw = copy.deepcopy(dict(w.smoke_config))
    raw.setdefault("scenario", {})["world"] = name
    raw["stop"] = {"iterations": 1}
    raw["tracking"] = {"enabled": False}
    raw["resources"] = {"num_env_runners": 0, "num_envs_per_env_runner": 2, "num_cpus": 2}
    for section, body in sections.items():
        raw.setdefault(section, {}).update(body)
    return raw


def test_the_registry_lists_the_shipped_worlds_and_the_toy():
    assert NAMES[:2] == ("lyappo", "emh") and "toy" in NAMES
    with pytest.raises(ConfigError) as err:
        worlds.get("no-such-world")
    assert err.value.key == "scenario.world" and "lyappo, emh" in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_key_is_explained(name):
    sections = explain(name)
    assert set(sections) == {"scenario", "algorithm", "stop", "evaluation", "tracking", "resources"}
    for section, rows in sections.items():
        assert rows, section
        for r in rows:
            assert r["doc"] and r["type"], (section, r)
    cfg = resolve_config(smoke(name))
    for section, rows in sections.items():  # the resolved config holds exactly the explained keys
        assert [r["key"] for r in rows] == list(cfg[section]), section


@pytest.mark.parametrize("name", NAMES)
def test_metrics_are_declared_once_with_units(name):
    w = worlds.get(name)
    keys = [m.key for m in w.metrics]
    assert len(keys) == len(set(keys)) and keys
    for m in w.metrics:
        assert m.si_unit and m.label and m.scale > 0
        assert m.show(1.0) == format(m.scale, m.fmt) and m.show(float("nan")) == "-"
    assert all(k in keys for k in w.train_metric_keys())


@pytest.mark.parametrize("name", NAMES)
def test_gym_envs_pass_the_checker_and_repeat_under_a_seed(name):
    from gymnasium.utils.env_checker import check_env

    w = worlds.get(name)
    scenario = resolve_config(smoke(name))["scenario"]
    for env_id in w.gym_envs:
        env = gym.make(env_id, config=scenario).unwrapped
        check_env(env, skip_render_check=True)

        def rollout(seed, env=env):
            env.action_space.seed(123)
            obs, _ = env.reset(seed=seed)
            out = [obs]
            for _ in range(5):
                obs, r, term, trunc, _ = env.step(env.action_space.sample())
                out += [obs, np.array([r])]
                if term or trunc:
                    break
            return np.concatenate([np.ravel(x) for x in out])

        np.testing.assert_array_equal(rollout(7), rollout(7))
        assert not np.array_equal(rollout(7), rollout(8))


@pytest.mark.parametrize("name", [n for n in NAMES if worlds.get(n).rllib_envs])
def test_multi_agent_envs_pass_rllibs_and_pettingzoos_checks(name):
    from pettingzoo.test import parallel_api_test
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    from splitrl.worlds.base import import_object

    w = worlds.get(name)
    scenario = resolve_config(smoke(name))["scenario"]
    for entry in w.rllib_envs.values():
        check_multiagent_environments(import_object(entry)(scenario))
    for entry in w.pettingzoo_envs.values():
        parallel_api_test(import_object(entry)(scenario), num_cycles=10)


@pytest.mark.parametrize("name", NAMES)
def test_baselines_are_deterministic_under_a_seed_and_report_every_metric(name):
    from splitrl.platform.compare import compare

    w = worlds.get(name)
    cfg = resolve_config(smoke(name))
    a = compare(w.make_baselines(cfg["evaluation"]), cfg)
    b = compare(w.make_baselines(cfg["evaluation"]), cfg)
    assert list(a["policies"]) == list(w.baselines)
    for policy, m in a["policies"].items():
        for metric in w.metrics:
            assert np.isfinite(m[metric.key]), (policy, metric.key)
        strip = {k: v for k, v in m.items() if k != "wall_s"}
        assert strip == {k: v for k, v in b["policies"][policy].items() if k != "wall_s"}, policy


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_scenario_key_is_one_line_and_exit_2(name, tmp_path, capsys):
    from splitrl.platform.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"scenario": {"world": name, "no_such_key": 1}}))
    assert main(["compare", str(cfg), "--json", str(tmp_path / "r.json")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splitrl: error: scenario.no_such_key: unknown key"), lines
    assert not (tmp_path / "r.json").exists()


CASES = [(n, a.name) for n in NAMES for a in worlds.get(n).algorithms]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,algorithm", CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_every_algorithm_trains_checkpoints_reloads_and_evaluates(name, algorithm, tmp_path, ray_local):
    """One tiny iteration through ``splitrl train``'s code path: the checkpoint is complete, the
    trained policy reloads from it and the comparison holds every declared metric for it and for
    every baseline."""
    import torch

    from splitrl.platform.checkpoints import latest_checkpoint, load_policy
    from splitrl.platform.train import Progress, train

    w = worlds.get(name)
    cfg = resolve_config(smoke(name, algorithm={"name": algorithm}))
    torch.set_num_threads(2)
    summary = train(cfg, out=tmp_path / "run", progress=Progress(enabled=False))
    assert torch.get_num_threads() == cfg["resources"]["torch_threads"] == 1  # resources.torch_threads applied
    ckpt = latest_checkpoint(tmp_path / "run")
    assert json.loads((ckpt / "splitrl.json").read_text())["iteration"] == 1
    policy = load_policy(ckpt)
    assert policy.name == w.policy_name(cfg)
    result = json.loads((tmp_path / "run" / "compare.json").read_text())
    assert list(result["policies"]) == [policy.name, *w.baselines]
    for m in w.metrics:
        for pname, values in result["policies"].items():
            assert m.key in values and np.isfinite(values[m.key]), (pname, m.key)
    assert summary["metrics"]["env_steps"] >= cfg["algorithm"]["train_batch_size"]
    again = w.evaluate(load_policy(ckpt), cfg["scenario"], cfg["evaluation"])
    first = result["policies"][policy.name]
    again = json.loads(json.dumps(again, default=float))  # as compare.json holds it
    assert {k: again[k] for k in again if k != "wall_s"} == {k: first[k] for k in again if k != "wall_s"}


def test_looking_worlds_up_and_resolving_a_config_imports_nothing_heavy():
    """The registry is lazy: the CLI's config handling and every world's declarations import no
    torch, Ray, MLflow, cvxpy, PettingZoo or matplotlib (rollout workers and a fast CLI)."""
    import subprocess
    import sys

    code = (
        "import sys, splitrl; from splitrl import worlds; from splitrl.platform.config import load_config\n"
        "[worlds.get(n).explain() for n in worlds.names()]; load_config('configs/lyappo.yaml')\n"
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'cvxpy', 'pettingzoo', 'matplotlib') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
