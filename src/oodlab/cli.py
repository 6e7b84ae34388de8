"""The ``oodlab`` command: ``list``, ``eval``, ``train``, ``bench``, ``demo``.

Every failure is one line on stderr and a non-zero exit, never a traceback: errors oodlab
raises on purpose (:class:`~oodlab.errors.OodlabError`), bad arguments and OS errors on a
path (named in the line) exit with status 2, anything unexpected with status 1. Warnings
are one line each (``warning: ...``). ``--debug`` (or ``OODLAB_DEBUG=1``) prints the full
traceback as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from oodlab.errors import OodlabError, describe_error
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


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``error: oodlab train: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="oodlab",
        description="Out-of-distribution detection: train, evaluate and benchmark OOD detectors. "
        "Every score is higher = more OOD.",
    )
    from oodlab import __version__

    parser.add_argument("--version", action="version", version=f"oodlab {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback of an error (OODLAB_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_list = sub.add_parser("list", help="list registered scores, losses, methods, datasets, ...")
    p_list.add_argument("family", choices=sorted(_families()), help="which registry to list")
    p_list.set_defaults(func=cmd_list)

    from oodlab.bench.cli import add_bench_parsers
    from oodlab.eval.cli import add_eval_parser
    from oodlab.train.cli import add_train_parser

    add_train_parser(sub)
    add_eval_parser(sub)
    add_bench_parsers(sub)
    from oodlab.predict_cli import add_predict_parser

    add_predict_parser(sub)
    for command in sub.choices.values():  # every option's help shows its default
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter
        command.add_argument(  # `oodlab train ... --debug` works too
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=file if file is not None else sys.stderr)


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get("OODLAB_DEBUG", "") not in (
        "",
        "0",
    )
    with _one_line_warnings():
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            print("interrupted; finished work is saved and a rerun resumes", file=sys.stderr)
            return 130
        except Exception as exc:
            if debug:
                traceback.print_exc()
            expected = isinstance(exc, OodlabError | OSError)
            line = describe_error(exc)
            if not expected:
                line = (
                    f"unexpected {type(exc).__name__}: {line} (rerun with --debug or "
                    "OODLAB_DEBUG=1 for the traceback, and report it)"
                )
            print(f"error: {line}", file=sys.stderr)
            return 2 if expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
