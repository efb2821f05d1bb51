"""``splitrl enachi-data build``: rebuild the ENACHI accuracy table from the digits CNN."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("enachi-data", help="the ENACHI world's accuracy data (a CNN on scikit-learn's digits)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="train the digits CNN and write the table (about 25 s on 2 cores)")
    b.add_argument("--out", metavar="FILE", help="output .npz (default: the shipped table in the package)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--epochs", type=int, default=25, help="plain training epochs")
    b.add_argument("--finetune-epochs", type=int, default=12, help="masked fine-tuning epochs")
    b.add_argument("--predictor-epochs", type=int, default=30, help="entropy predictor epochs")
    b.set_defaults(func=_build)


def _build(args) -> int:
    from splitrl.core.errors import ConfigError

    for flag in ("epochs", "finetune_epochs", "predictor_epochs"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')}", f"must be >= 1, got {getattr(args, flag)}")
    if args.seed < 0:
        raise ConfigError("--seed", f"must be >= 0, got {args.seed}")
    from .accuracy import TABLE_PATH
    from .digits import build

    build(
        seed=args.seed,
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        predictor_epochs=args.predictor_epochs,
        out=args.out or TABLE_PATH,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    return 0
