"""``oodlab bench PRESET`` and ``oodlab demo`` (the reduced offline bench behind ``make demo``)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path
from typing import Any

from oodlab.argtypes import folder, seed_list
from oodlab.errors import DatasetNotFoundError


def add_bench_parsers(sub: Any) -> None:
    from oodlab.bench.presets import PRESETS

    p = sub.add_parser("bench", help="train and evaluate every method of a preset; one table")
    p.add_argument("preset", choices=PRESETS.names(), help="bench preset to run")
    p.add_argument("--out", type=folder, help="output folder (default: runs/bench-<preset>)")
    p.add_argument("--seeds", type=seed_list, help="comma-separated seeds (default: the preset's)")
    p.add_argument("--data-root", type=Path, help="folder holding the preset's datasets")
    p.add_argument(
        "--tex-layout",
        default="near_far",
        help="columns of summary.tex: near_far, lt_papers (AUROC / AUPR / FPR95 / ACC "
        "as PASCL and ImOOD print them), patt, shots, oodlab",
    )
    p.add_argument(
        "--only-trained",
        action="store_true",
        help="evaluate and summarise only the runs that finished training; train nothing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="the offline demo: a reduced fmnist_lt bench on the CPU")
    d.add_argument("--out", type=folder, default=Path("runs/demo"), help="output folder")
    d.add_argument("--data-root", type=Path, help="where to look for (or put) Fashion-MNIST")
    d.add_argument(
        "--no-install",
        action="store_true",
        help=f"never install or download Fashion-MNIST when it is missing (or {NO_INSTALL_ENV}=1)",
    )
    d.set_defaults(func=cmd_demo)


def _report(summary: dict[str, Any], out: Path) -> None:
    from oodlab.bench.report import HEADER, table_rows
    from oodlab.eval.report import markdown_table

    print(markdown_table(HEADER, table_rows(summary, only_highlight=True)))
    print(f"\nfull table: {out / 'summary.md'} (csv, json, tex beside it)")
    print(f"figures: {out / 'figures'} and {out / 'runs'}/<method>-s<seed>/eval/figures/")


def cmd_bench(args: argparse.Namespace) -> int:
    from oodlab.bench.runner import run_bench

    out = args.out or Path("runs") / f"bench-{args.preset}"
    seeds = args.seeds
    from oodlab.bench.latex import LAYOUTS
    from oodlab.errors import ConfigError

    if args.tex_layout not in LAYOUTS:
        raise ConfigError(
            f"--tex-layout {args.tex_layout!r} is unknown; choose one of {sorted(LAYOUTS)}"
        )
    summary = run_bench(
        args.preset,
        out,
        seeds=seeds,
        quiet=args.quiet,
        data_root=args.data_root,
        layout=args.tex_layout,
        train_missing=not args.only_trained,
    )
    _report(summary, out)
    return 0


NO_INSTALL_ENV = "OODLAB_NO_INSTALL"


def ensure_fashion_mnist(data_root: Path | None, install: bool = True) -> Path | None:
    """Find Fashion-MNIST; if absent, install Debian's package (as root, without a data root;
    said before it starts) or download it with torchvision into the data root, saying which;
    with neither possible, or ``install`` off (``--no-install``, ``OODLAB_NO_INSTALL=1``),
    raise one line naming both ways."""
    import os

    from oodlab.data.datasets.idx import DEBIAN_DIR, find_fashion_mnist

    try:
        find_fashion_mnist(data_root)
        return data_root
    except DatasetNotFoundError:
        if not install or os.environ.get(NO_INSTALL_ENV, "") not in ("", "0"):
            raise
    apt = shutil.which("apt-get")
    if apt is not None and _is_root() and data_root is None:
        print(
            "Fashion-MNIST not found: installing the Debian package dataset-fashion-mnist with "
            f"apt-get (into {DEBIAN_DIR}); to skip this, rerun with --no-install or "
            f"{NO_INSTALL_ENV}=1 ..."
        )
        ok = (
            subprocess.run(
                [apt, "install", "-y", "-q", "dataset-fashion-mnist"], check=False
            ).returncode
            == 0
        )
        if ok and (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
            print(f"installed into {DEBIAN_DIR}")
            return data_root
    target = data_root or Path("data")
    print(f"Fashion-MNIST not found: downloading it with torchvision into {target} ...")
    try:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(target), train=train, download=True)
        find_fashion_mnist(target)
        print(f"downloaded into {target / 'FashionMNIST' / 'raw'}")
        return target
    except Exception as exc:
        raise DatasetNotFoundError(
            "Fashion-MNIST is missing and could not be obtained: install it with "
            "`apt-get install dataset-fashion-mnist` (as root) or download it with "
            f"torchvision.datasets.FashionMNIST(root, download=True) ({type(exc).__name__})"
        ) from None


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def cmd_demo(args: argparse.Namespace) -> int:
    from oodlab.bench.presets import PRESETS
    from oodlab.bench.runner import run_bench

    data_root = ensure_fashion_mnist(args.data_root, install=not args.no_install)
    preset = PRESETS.get("demo").factory()
    print(f"oodlab demo: {preset.description}")
    print("methods: " + ", ".join(m.label for m in preset.methods) + f"; results in {args.out}\n")
    summary = run_bench("demo", args.out, quiet=True, data_root=data_root)
    print()
    _report(summary, args.out)
    return 0
