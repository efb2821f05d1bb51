"""The ``splitrl`` command line: help, profile, compare, and clear errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from splitrl.platform.cli import main
from splitrl.platform.config import ConfigError, load_config, resolve_config


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "splitrl.platform.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "profile" in out.stdout and "compare" in out.stdout


def test_profile_json_structure(capsys):
    assert main(["profile", "resnet18", "--format", "json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["model"] == "resnet18" and prof["input_shape"] == [3, 224, 224]
    assert {"name", "op", "macs", "out_bytes", "parents"} <= set(prof["nodes"][0])
    names = [n["name"] for n in prof["nodes"]]
    assert all(p in names[:i] for i, n in enumerate(prof["nodes"]) for p in n["parents"])
    for key, first in (("partition_points", 1), ("layer_points", 0)):
        pts = prof[key]
        assert [p["index"] for p in pts] == list(range(first, first + len(pts)))
        assert pts[0]["cut"] == ["input"] and pts[0]["device_macs"] == 0
        assert pts[-1]["tx_bytes"] == 0 and pts[-1]["device_macs"] == prof["total_macs"]
    assert len(prof["partition_points"]) > len(prof["layer_points"])  # residual blocks add cuts


def test_profile_table_and_unknown_model(capsys):
    assert main(["profile", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "0.714 GMACs" in out and "features_2" in out
    assert main(["profile", "resnet18", "--points", "operator"]) == 0
    out = capsys.readouterr().out
    assert "38 operator-grained" in out and "maxpool, layer1_0_conv2" in out
    assert main(["profile", "lenet"]) == 2
    assert "unknown model 'lenet'" in capsys.readouterr().err


def test_compare_writes_table_json_and_plot(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scenario:\n  num_devices: 2\nevaluation:\n  episodes: 2\n  episode_periods: 8\n")
    out = run_cli(
        "compare",
        str(cfg),
        "--json",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "r.png"),
        "--set",
        "scenario.arrival_rate=1.5",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    names = ["Fix-Cov", "Random-Cov", "Local-only", "Edge-only", "Greedy-Cov"]
    assert list(result["policies"]) == names
    for name in names:
        assert name in out.stdout
        m = result["policies"][name]
        assert m["energy"] == pytest.approx(m["energy_local"] + m["energy_tx"])
        assert m["backlog"] == pytest.approx(m["backlog_local"] + m["backlog_tx"] + m["backlog_edge"])
    assert result["policies"]["Local-only"]["energy_tx"] == 0
    assert result["policies"]["Local-only"]["partition"] == 1.0
    assert result["policies"]["Edge-only"]["energy_local"] == 0
    assert result["scenario"]["arrival_rate"] == 1.5
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_is_reproducible(tmp_path):
    args = [
        "compare",
        "--set",
        "scenario.num_devices=2",
        "--set",
        "evaluation.episode_periods=5",
        "--set",
        "evaluation.episodes=1",
        "--set",
        "evaluation.baselines=[Random-Cov,Greedy-Cov]",
    ]
    a = run_cli(*args, "--json", str(tmp_path / "a.json"))
    b = run_cli(*args, "--json", str(tmp_path / "b.json"))
    assert a.returncode == 0 and b.returncode == 0
    ja, jb = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    for name in ja["policies"]:
        ja["policies"][name].pop("wall_s"), jb["policies"][name].pop("wall_s")
    assert ja == jb


@pytest.mark.parametrize(
    "args, key",
    [
        (["--set", "scenario.num_devices=-1"], "scenario.num_devices"),
        (["--set", "scenario.bogus=1"], "scenario.bogus"),
        (["--set", "evaluation.episodes=0"], "evaluation.episodes"),
        (["--set", "evaluation.baselines=[Oracle]"], "evaluation.baselines"),
        (["--set", "training.lr=1"], "training"),
        (["--set", "scenario.arrival_rate=100"], "scenario.arrival_rate"),
        (["--set", "evaluation.fixed_partition=[1, 99]"], "evaluation.fixed_partition"),
        (["--set", "novalue"], "novalue"),
        (["--set", "scenario.world=mars"], "scenario.world"),
        (["--set", "scenario.world=emh", "--set", "algorithm.name=lyappo"], "algorithm.name"),
        (["--set", "scenario.world=emh", "--set", "evaluation.baselines=[Fix-Cov]"], "evaluation.baselines"),
        (["--set", "scenario.world=emh", "--set", "scenario.num_channels=0"], "scenario.num_channels"),
        (["--set", "scenario.world=emh", "--set", "scenario.arrival_rate=1"], "scenario.arrival_rate"),
        (
            ["--set", "scenario.world=emh", "--set", "algorithm.point_prior_temperature=-1"],
            "algorithm.point_prior_temperature",
        ),
    ],
)
def test_bad_config_is_one_clear_line_and_exit_2(tmp_path, args, key):
    out = run_cli("compare", *args, "--json", str(tmp_path / "r.json"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"splitrl: error: {key}"), out.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("key", ["algorithm.entropy_coeff", "algorithm.window_entropy_coeff"])
def test_entropy_coefficients_take_a_schedule_or_say_what_is_wrong(key):
    emh = {"scenario": {"world": "emh"}}
    # 1.0e6 (PyYAML reads it as a string) and 2e6 (a float) are integer env steps
    cfg = resolve_config(emh, [f"{key}=[[0, 0.03], [1.0e6, 0], [2e6, 0.01]]"])
    section, name = key.split(".")
    assert cfg[section][name] == [[0, 0.03], [1_000_000, 0.0], [2_000_000, 0.01]]
    assert resolve_config(emh, [f"{key}=0.02"])[section][name] == 0.02
    for bad, why in [
        ("[[0, 0.1]]", "at least two points"),
        ("[[5, 0.1], [9, 0]]", "first point's env step is 5"),
        ("[[0, 0.1], [0, 0]]", "env step 0 of point 1 is not after 0"),
        ("[[0, 0.1], [10, -1]]", "point 1 has value -1"),
        ("[[0, 0.1], [10.5, 0]]", "point 1 is"),
        ("[0.1, 0.2]", "point 0 is 0.1"),
        ("abc", "expected float or a schedule"),
        ("-1", "must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=why) as err:
            resolve_config(emh, [f"{key}={bad}"])
        assert err.value.key == key


def test_missing_config_file(tmp_path):
    out = run_cli("compare", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "config file not found" in out.stderr


def test_resolved_config_fills_defaults():
    cfg = resolve_config({"scenario": {"num_devices": 3}}, ["evaluation.seed=5"])
    assert cfg["scenario"]["num_devices"] == 3 and cfg["scenario"]["f_edge_max_hz"] == 20e9
    assert cfg["evaluation"]["seed"] == 5 and cfg["evaluation"]["episodes"] == 5
    repo = Path(__file__).resolve().parent.parent
    assert load_config(repo / "configs/lyappo.yaml")["scenario"]["models"] == ["resnet50", "mobilenet_v2"]
    with pytest.raises(ConfigError):
        resolve_config({"evaluation": {"episodes": True}})


def test_progress_is_live_on_a_terminal_and_plain_otherwise():
    import io

    from splitrl.platform.train import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    m = {
        "env_steps": 4000.0,
        "env_steps_per_s": 800.0,
        "time_s": 5.0,
        "episode_return_mean": -123.4,
        "energy": 0.0005,
        "backlog": 0.75,
    }
    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        p = Progress(stream)
        p.update(1, {"iterations": 3}, m)
        p.update(2, {"iterations": 3}, {k: v for k, v in m.items() if k != "energy"})
        p.done()
    assert tty.getvalue().count("\r\033[K") == 2 and tty.getvalue().endswith("\n")
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("iter 1/3  steps 4,000") and "return -123.4" in lines[0]
    assert "energy 0.500 mJ/slot" in lines[0] and "energy - mJ/slot" in lines[1]
    assert "\r" not in plain.getvalue()
