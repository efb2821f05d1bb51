"""Run directories written before the worlds refactor (``tests/fixtures/legacy_checkpoints``, made
by the code at commit 3244086) still evaluate to the same numbers and resume; old import paths
still import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_checkpoints"


@pytest.mark.parametrize("world", ["lyappo", "emh"])
def test_a_checkpoint_from_before_the_refactor_evaluates_to_the_same_numbers(world, tmp_path, capsys):
    from splitrl.platform.cli import main

    run = shutil.copytree(FIXTURES / world, tmp_path / world)
    assert main(["evaluate", str(run), "--episodes", "2", "--json", str(tmp_path / "e.json")]) == 0
    old = json.loads((FIXTURES / world / "evaluate.json").read_text())
    new = json.loads((tmp_path / "e.json").read_text())
    assert new["policy"] == old["policy"] and new["episodes"] == old["episodes"] == 2
    for key, value in old["metrics"].items():
        # the fixture was written with torch's default thread count; resources.torch_threads (1)
        # changes the order of float reductions in the policy's forward pass: ~1e-9 relative
        assert new["metrics"][key] == pytest.approx(value, rel=1e-7, abs=1e-12), key


@pytest.mark.timeout(300)
@pytest.mark.parametrize("world", ["lyappo", "emh"])
def test_a_run_from_before_the_refactor_resumes_with_its_own_config_yaml(world, tmp_path, ray_local):
    """``splitrl train RUN/config.yaml --resume RUN``: the old config.yaml holds every world's keys
    (with their defaults); the run continues from iteration 2 to 3 and writes iteration 3 once."""
    from splitrl.platform.checkpoints import latest_checkpoint
    from splitrl.platform.config import load_config
    from splitrl.platform.train import Progress, train

    run = shutil.copytree(FIXTURES / world, tmp_path / world)
    cfg = load_config(run / "config.yaml", ["stop.iterations=3"])
    summary = train(cfg, resume=run, progress=Progress(enabled=False), compare_after=False)
    assert summary["iteration"] == 3
    assert json.loads((latest_checkpoint(run) / "splitrl.json").read_text())["iteration"] == 3
    rows = [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3]


def test_old_import_paths_resolve_to_the_moved_code():
    import splitrl  # noqa: F401  (installs the finder for old paths)
    from splitrl.envs.emh import EMHWorld, agent_ids
    from splitrl.envs.lyappo import LyaPPOSystem, LyaPPOVectorEnv
    from splitrl.platform.emh import EMHMetrics, _same_id
    from splitrl.rl_modules.emh import EMHMultiRLModule
    from splitrl.worlds.emh.algorithms import EMHMetrics as new_metrics
    from splitrl.worlds.emh.algorithms import same_agent_id
    from splitrl.worlds.emh.modules import EMHMultiRLModule as new_module
    from splitrl.worlds.emh.system import EMHSystem
    from splitrl.worlds.lyappo.env import LyaPPOVectorEnv as new_env
    from splitrl.worlds.lyappo.system import LyaPPOSystem as new_system

    assert EMHWorld is EMHSystem and _same_id is same_agent_id and EMHMetrics is new_metrics
    assert EMHMultiRLModule is new_module and LyaPPOVectorEnv is new_env and LyaPPOSystem is new_system
    assert agent_ids(2) == ["md_0", "md_1"]
    with pytest.raises(ModuleNotFoundError):
        import splitrl.envs.no_such_module  # noqa: F401


def test_an_old_config_yaml_loses_only_the_other_worlds_keys_at_their_old_defaults():
    """A run directory's old config.yaml held every world's keys at their defaults; those are
    dropped.  The same key with any other value is still an unknown key of this world."""
    from splitrl.core.errors import ConfigError
    from splitrl.platform.config import resolve_config

    cfg = resolve_config({"algorithm": {"embed": [512, 256], "slot_masking": False}, "evaluation": {"fixed_tasks": 50}})
    assert "embed" not in cfg["algorithm"] and "fixed_tasks" not in cfg["evaluation"]
    for section, key, value in [("algorithm", "embed", [8]), ("evaluation", "fixed_tasks", 7)]:
        with pytest.raises(ConfigError) as err:
            resolve_config({section: {key: value}})
        assert err.value.key == f"{section}.{key}" and "unknown key" in str(err.value)
    emh = {"scenario": {"world": "emh", "l0_s": 0.01}}
    assert "actor_lr" not in resolve_config({**emh, "algorithm": {"actor_lr": 1.0e-4}})["algorithm"]
    with pytest.raises(ConfigError, match="algorithm.actor_lr: unknown key"):
        resolve_config({**emh, "algorithm": {"actor_lr": 3.0e-4}})
