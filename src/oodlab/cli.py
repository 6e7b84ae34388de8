"""The ``oodlab`` command: ``list``, ``eval``, ``train``, ``bench``, ``demo``.

Errors that oodlab raises on purpose (:class:`~oodlab.errors.OodlabError`) are printed
as one line, ``error: ...``, and the command exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from oodlab.errors import OodlabError
from oodlab.registry import Registry


def _families() -> dict[str, Callable[[], Registry]]:
    def scores() -> Registry:
        from oodlab.scores import SCORES

        return SCORES

    def losses() -> Registry:
        from oodlab.losses import LOSSES

        return LOSSES

    def datasets() -> Registry:
        from oodlab.data import DATASETS

        return DATASETS

    def benchmarks() -> Registry:
        from oodlab.data import BENCHMARKS

        return BENCHMARKS

    def models() -> Registry:
        from oodlab.models import MODELS

        return MODELS

    def methods() -> Registry:
        from oodlab.train.recipes import METHODS

        return METHODS

    def formats() -> Registry:
        from oodlab.models.converters import FORMATS

        return FORMATS

    def protocols() -> Registry:
        from oodlab.eval.protocols import PROTOCOLS

        return PROTOCOLS

    return {
        "formats": formats,
        "protocols": protocols,
        "scores": scores,
        "losses": losses,
        "methods": methods,
        "datasets": datasets,
        "benchmarks": benchmarks,
        "models": models,
    }


def cmd_list(args: argparse.Namespace) -> int:
    registry = _families()[args.family]()
    entries = list(registry)
    width = max((len(e.name) for e in entries), default=4)
    print(f"{'NAME':<{width}}  FIT  {'NEEDS':<28}  PAPER")
    for entry in entries:
        if "layout" in entry.extra:  # formats (and protocols): what they read, then the paper
            print(f"{entry.name:<{width}}  {entry.paper}\n{'':<{width}}  {entry.extra['layout']}")
            continue
        needs = ",".join(entry.needs) or "-"
        fit = "fit" if entry.requires_fit else "-  "
        print(f"{entry.name:<{width}}  {fit}  {needs:<28}  {entry.paper or '-'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oodlab",
        description="Out-of-distribution detection: train, evaluate and benchmark OOD detectors. "
        "Every score is higher = more OOD.",
    )
    from oodlab import __version__

    parser.add_argument("--version", action="version", version=f"oodlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="list registered scores, losses, methods, datasets, ...")
    p_list.add_argument("family", choices=sorted(_families()), help="which registry to list")
    p_list.set_defaults(func=cmd_list)

    from oodlab.bench_cli import add_bench_parsers
    from oodlab.eval.cli import add_eval_parser
    from oodlab.train.cli import add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    add_bench_parsers(sub)
    from oodlab.predict_cli import add_predict_parser

    add_predict_parser(sub)
    for command in sub.choices.values():  # every option's help shows its default
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except OodlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
