"""``splitrl``: the command line of the platform.

Errors in user input (config keys, values, files) print one line naming the key and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_profile(args) -> int:
    from splitrl import dnn

    if args.model not in dnn.MODELS:
        raise _UserError(f"profile: unknown model {args.model!r}; known: {', '.join(sorted(dnn.MODELS))}")
    prof = dnn.trace_profile(args.model, tuple(args.input_shape))
    if args.save:
        path = dnn.save_profile(prof)
        dnn.load_profile.cache_clear()
        print(f"saved {path}", file=sys.stderr)
    if args.format == "json":
        json.dump(prof, sys.stdout, indent=1)
        print()
        return 0
    print(
        f"{prof['model']}  input {'x'.join(map(str, prof['input_shape']))}  "
        f"{prof['total_macs'] / 1e9:.3f} GMACs  {len(prof['nodes'])} operators (cheap ones folded)  "
        f"{len(prof['layer_points'])} layer-level / {len(prof['partition_points'])} operator-grained "
        f"partition points"
    )
    key, label = ("partition_points", "s") if args.points == "operator" else ("layer_points", "k")
    print(
        f"{label:>4}  {'cut (device-side operators whose outputs are sent)':<52} {'device GMACs':>12} "
        f"{'share':>6} {'tx [kB]':>10}"
    )
    for p in prof[key]:
        cut = ", ".join(p["cut"])
        print(
            f"{p['index']:>4}  {cut[:52]:<52} {p['device_macs'] / 1e9:>12.4f} "
            f"{p['device_macs'] / prof['total_macs']:>6.3f} {p['tx_bytes'] / 1e3:>10.1f}"
        )
    return 0


def _cmd_compare(args) -> int:
    from splitrl import worlds
    from splitrl.platform.checkpoints import checkpoint_config, latest_checkpoint, load_policy
    from splitrl.platform.compare import compare, format_table, write_json
    from splitrl.platform.config import load_config

    sets = list(args.set or [])
    if args.episodes is not None:
        sets.append(f"evaluation.episodes={args.episodes}")
    cfg = load_config(args.config, sets)
    world = worlds.of(cfg)
    # a checkpoint may differ from the compare config in its own variant, not in the physics
    variant_keys = ("episode_periods", "name", *world.policy_scenario_keys)
    trained = []
    for path in args.checkpoint or []:
        ckpt = latest_checkpoint(path)
        theirs = checkpoint_config(ckpt)["scenario"]
        diff = [k for k in theirs if theirs[k] != cfg["scenario"].get(k) and k not in variant_keys]
        if diff:
            raise _UserError(
                f"--checkpoint {path}: trained on a different scenario "
                f"(scenario.{diff[0]} = {theirs[diff[0]]!r}, config has {cfg['scenario'].get(diff[0])!r})"
            )
        trained.append(load_policy(ckpt))
    names = [p.name for p in trained]
    for i, p in enumerate(trained):  # two checkpoints of one algorithm: keep both, apart
        if names.count(p.name) > 1:
            p.name = f"{p.name} #{names[: i + 1].count(p.name)}"
    policies = trained + world.make_baselines(cfg["evaluation"])

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(
        f"comparing {len(policies)} policies on {cfg['evaluation']['episodes']} seeded episodes "
        f"of scenario {cfg['scenario']['name']}"
    )
    result = compare(policies, cfg, log)
    print(format_table(result, world))
    if args.json:
        write_json(result, args.json)
        log(f"wrote {args.json}")
    if args.plot:
        world.plot(result, args.plot)
        log(f"wrote {args.plot}")
    return 0


def _cmd_train(args) -> int:
    from splitrl.platform.config import load_config
    from splitrl.platform.train import Progress, train

    cfg = load_config(args.config, list(args.set or []))  # validated before anything is created
    summary = train(
        cfg,
        out=args.out,
        resume=args.resume,
        address=args.address,
        mlflow_uri=args.mlflow_uri,
        progress=Progress(enabled=not args.quiet),
        compare_after=not args.no_compare,
    )
    print(f"run directory: {summary['run_dir']}", file=sys.stderr)
    if summary.get("mlflow_run_id"):
        from splitrl.platform.tracking import ui_link

        print(
            f"mlflow run: {summary['mlflow_run_id']} at {summary['mlflow_uri']}; with `mlflow ui "
            f"--backend-store-uri {summary['mlflow_uri']}`: "
            f"{ui_link(summary['mlflow_experiment_id'], summary['mlflow_run_id'])}",
            file=sys.stderr,
        )
    return 0


def _cmd_evaluate(args) -> int:
    from splitrl import worlds
    from splitrl.platform.checkpoints import checkpoint_config, latest_checkpoint, load_policy
    from splitrl.platform.compare import write_json
    from splitrl.platform.config import resolve_config, set_torch_threads

    ckpt = latest_checkpoint(args.checkpoint)
    cfg = resolve_config(checkpoint_config(ckpt), list(args.set or []))
    world = worlds.of(cfg)
    ev = cfg["evaluation"]
    if args.episodes is not None:
        ev["episodes"] = args.episodes
    policy = load_policy(ckpt)
    set_torch_threads(cfg)
    m = world.evaluate(policy, cfg["scenario"], ev)
    result = {
        "checkpoint": str(ckpt),
        "policy": policy.name,
        "episodes": ev["episodes"],
        "seed": ev["seed"],
        "metrics": m,
    }
    print(f"{policy.name} ({ckpt}) on {ev['episodes']} seeded episodes:")
    for metric in world.metrics:
        if metric.key in m:
            print(f"  {metric.key:<16} {metric.show(m[metric.key]):>10} {metric.unit}".rstrip())
    if args.json:
        write_json(result, args.json)
    return 0


def _cmd_config(args) -> int:
    from splitrl import worlds
    from splitrl.platform.config import explain, explain_markdown, readme_markdown

    names = [args.world] if args.world else list(worlds.names())
    for name in names:
        worlds.get(name)  # an unknown world is one line naming the registered ones
    if args.format == "readme":
        print(readme_markdown(), end="")
        return 0
    if args.format == "markdown":
        print("\n".join(explain_markdown(n) for n in names), end="")
        return 0
    if args.format == "json":
        json.dump({n: explain(n) for n in names}, sys.stdout, indent=1, default=str)
        print()
        return 0
    for name in names:
        world = worlds.get(name)
        print(f"scenario.world: {name}  ({world.title}: {world.doc})")
        for section, rows in explain(name).items():
            print(f"  {section}")
            for r in rows:
                unit = f" [{r['unit']}]" if r["unit"] else ""
                print(f"    {r['key']:<26} {r['type']:<28} default {r['default']!r}{unit}")
                if r["doc"]:
                    print(f"      {r['doc']}")
        print()
    return 0


def _cmd_sweep(args) -> int:
    from splitrl.tuning.spec import load_sweep
    from splitrl.tuning.sweep import INTERRUPTED, run_sweep

    spec = load_sweep(args.sweep)  # validated (every scenario point resolved) before anything starts
    summary = run_sweep(spec, out=args.out, resume=args.resume, address=args.address, mlflow_uri=args.mlflow_uri)
    if summary["status"] == "INTERRUPTED":
        return INTERRUPTED
    print(f"sweep directory: {summary['out']}", file=sys.stderr)
    return 0 if summary["status"] == "FINISHED" else 1


class _UserError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitrl", description="Train, evaluate and compare split-inference agents for mobile edge computing."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("profile", help="trace a torchvision model into an operator DAG and partition table")
    p.add_argument("model", help="torchvision model name (alexnet, vgg16, resnet18, resnet50, mobilenet_v2, googlenet)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--points",
        choices=("layer", "operator"),
        default="layer",
        help="table of layer-level (one tensor crosses) or operator-grained (any cut of the DAG) points",
    )
    p.add_argument("--input-shape", type=int, nargs=3, default=(3, 224, 224), metavar=("C", "H", "W"))
    p.add_argument("--save", action="store_true", help="rewrite the cached profile in the package")
    p.set_defaults(func=_cmd_profile)

    t = sub.add_parser("train", help="train an agent of the config's world with RLlib, tracked in MLflow")
    t.add_argument("config", nargs="?", default=None, help="YAML config (default: built-in defaults)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<run name>-<time>)")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    t.add_argument(
        "--address", metavar="ADDR", help="Ray cluster address (e.g. auto); default: local Ray (or RAY_ADDRESS)"
    )
    t.add_argument("--mlflow-uri", metavar="URI", help="MLflow tracking URI (default sqlite:///mlflow.db here)")
    t.add_argument("--no-compare", action="store_true", help="skip the comparison with the baselines at the end")
    t.add_argument("--quiet", action="store_true", help="no progress display")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained checkpoint on seeded episodes")
    e.add_argument("checkpoint", help="run directory or checkpoint directory")
    e.add_argument("--episodes", type=int, help="seeded episodes (default evaluation.episodes of the run)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="override an evaluation key")
    e.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser("compare", help="run trained agents and the baselines on the same seeded episodes")
    c.add_argument("config", nargs="?", default=None, help="YAML config (default: built-in defaults)")
    c.add_argument(
        "--checkpoint", action="append", metavar="DIR", help="a trained run or checkpoint to include (repeatable)"
    )
    c.add_argument("--episodes", type=int, help="seeded episodes per policy (evaluation.episodes)")
    c.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. scenario.arrival_rate=0.5 (repeatable)",
    )
    c.add_argument("--json", metavar="FILE", help="write the results as JSON")
    c.add_argument("--plot", metavar="FILE", help="write a PNG chart")
    c.set_defaults(func=_cmd_compare)

    g = sub.add_parser("config", help="list every config key of a world: type, default, unit, meaning")
    g.add_argument("--explain", action="store_true", help="(the default) explain the keys")
    g.add_argument("world", nargs="?", help="a world (scenario.world); default: every registered world")
    g.add_argument(
        "--format",
        choices=("text", "markdown", "json", "readme"),
        default="text",
        help="readme: the README's generated tables (every registered world)",
    )
    g.set_defaults(func=_cmd_config)

    w = sub.add_parser(
        "sweep",
        help="run a Ray Tune sweep (scenario grid, algorithms, seeds, search space), "
        "tracked in MLflow as a parent run with a child per trial",
    )
    w.add_argument("sweep", help="sweep YAML (see configs/sweeps/)")
    w.add_argument("--out", metavar="DIR", help="sweep directory (default sweeps/<name>)")
    w.add_argument(
        "--resume", action="store_true", help="continue the sweep in --out: finish the trials that had not finished"
    )
    w.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster address (e.g. auto); default: local Ray sized to this machine (or RAY_ADDRESS)",
    )
    w.add_argument("--mlflow-uri", metavar="URI", help="MLflow tracking URI (default sqlite:///mlflow.db here)")
    w.set_defaults(func=_cmd_sweep)

    from splitrl import worlds
    from splitrl.worlds.base import import_object

    for name in worlds.names():  # a world's own subcommands (its data builders)
        for register in worlds.get(name).commands.values():
            import_object(register)(sub)
    return parser


def _quiet_libraries() -> None:
    """Keep the terminal for splitrl's own output: library chatter goes to warnings level."""
    import logging
    import os
    import warnings

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("mlflow", "alembic", "ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.rllib.utils.deprecation").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    from splitrl.core.errors import ConfigError

    _quiet_libraries()

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from splitrl.platform.train import Terminated

    try:
        return args.func(args)
    except (ConfigError, _UserError) as exc:
        print(f"splitrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; the shell's convention 128 + SIGINT
        print("splitrl: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:  # SIGTERM (ray job stop, Kubernetes): 128 + SIGTERM
        print("splitrl: terminated (SIGTERM)", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
