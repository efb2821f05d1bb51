"""``splitrl``: the command line of the platform.

Errors in user input (config keys, values, files) print one line naming the key and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_profile(args) -> int:
    from splitrl.envs import dnn

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
    print(f"{prof['model']}  input {'x'.join(map(str, prof['input_shape']))}  "
          f"{prof['total_macs'] / 1e9:.3f} GMACs  {len(prof['nodes'])} operators "
          f"(cheap ones folded)  {len(prof['partition_points'])} layer-level partition points")
    print(f"{'k':>3}  {'cut after':<24} {'device GMACs':>12} {'c_k':>6} {'tx [kB]':>10}")
    for p in prof["partition_points"]:
        print(f"{p['index']:>3}  {p['cut'][0]:<24} {p['device_macs'] / 1e9:>12.4f} "
              f"{p['device_macs'] / prof['total_macs']:>6.3f} {p['tx_bytes'] / 1e3:>10.1f}")
    return 0


def _cmd_compare(args) -> int:
    from splitrl.platform.baselines import make_baselines
    from splitrl.platform.compare import compare, format_table, plot, write_json
    from splitrl.platform.config import load_config

    sets = list(args.set or [])
    if args.episodes is not None:
        sets.append(f"evaluation.episodes={args.episodes}")
    cfg = load_config(args.config, sets)
    policies = make_baselines(cfg["evaluation"])
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    log(f"comparing {len(policies)} policies on {cfg['evaluation']['episodes']} seeded episodes "
        f"of scenario {cfg['scenario']['name']}")
    result = compare(policies, cfg["scenario"], cfg["evaluation"], progress=log)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        log(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        log(f"wrote {args.plot}")
    return 0


class _UserError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitrl",
        description="Train, evaluate and compare split-inference agents for mobile edge computing.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("profile", help="trace a torchvision model into an operator DAG and partition table")
    p.add_argument("model", help="torchvision model name (alexnet, vgg16, resnet18, resnet50, "
                                 "mobilenet_v2, googlenet)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--input-shape", type=int, nargs=3, default=(3, 224, 224), metavar=("C", "H", "W"))
    p.add_argument("--save", action="store_true", help="rewrite the cached profile in the package")
    p.set_defaults(func=_cmd_profile)

    c = sub.add_parser("compare", help="run the baselines on the same seeded episodes and tabulate them")
    c.add_argument("config", nargs="?", default=None, help="YAML config (default: built-in defaults)")
    c.add_argument("--episodes", type=int, help="seeded episodes per policy (evaluation.episodes)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. "
                   "scenario.arrival_rate=0.5 (repeatable)")
    c.add_argument("--json", metavar="FILE", help="write the results as JSON")
    c.add_argument("--plot", metavar="FILE", help="write a PNG chart")
    c.set_defaults(func=_cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    from splitrl.platform.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ConfigError, _UserError) as exc:
        print(f"splitrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
