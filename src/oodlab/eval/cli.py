"""``oodlab eval``: evaluate a run folder or a checkpoint on a benchmark with a list of scores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodlab.argtypes import DEVICES, device_name, folder, nonnegative_int, positive_int
from oodlab.errors import CheckpointError, ConfigError
from oodlab.eval.checkpoint import add_checkpoint_arguments

if TYPE_CHECKING:
    from oodlab.data.benchmarks import Benchmark
    from oodlab.eval.tuning import TuneConfig

ZOO = "zoo"


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run (or a checkpoint) with OOD scores",
        description="Evaluate a run folder written by `oodlab train`, or a weights file with "
        "--model and --benchmark. Results go to OUT/results.{json,csv,md} and OUT/figures/.",
    )
    p.add_argument("run_dir", nargs="?", type=Path, help="run folder written by `oodlab train`")
    p.add_argument("--checkpoint", type=Path, help="weights file (state dict) instead of a run")
    p.add_argument("--model", help="registered model name for --checkpoint (oodlab list models)")
    p.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option for --checkpoint, e.g. width=0.5, or a format option such as "
        "groups=FILE for MOS (repeatable)",
    )
    add_checkpoint_arguments(p)
    p.add_argument("--benchmark", help="benchmark preset (oodlab list benchmarks)")
    p.add_argument("--data-root", type=Path, help="folder holding the datasets")
    p.add_argument(
        "--scores",
        default="default",
        help="comma-separated score names, 'default' (the method's own score plus msp and "
        f"energy), or '{ZOO}' (every score the model supports)",
    )
    p.add_argument("--out", type=folder, help="output folder (default: RUN_DIR/eval)")
    p.add_argument(
        "--tune",
        action="store_true",
        help="tune score hyper-parameters: ID validation split vs the benchmark's OOD "
        "validation set (else its auxiliary outliers)",
    )
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per forward pass")
    p.add_argument("--workers", type=nonnegative_int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", type=device_name, default="auto", help=DEVICES)
    p.add_argument(
        "--cache-dir",
        type=folder,
        default=Path(".oodlab_cache"),
        help="where the extracted logits/features are cached, one file per (weights, "
        "dataset); delete it to free space",
    )
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the benchmark and tuning splits"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)


def parse_score_list(text: str) -> list[Any]:
    """``--scores``: names, each with optional hyper-parameters (``knn:k=300,react:
    percentile=95``; :func:`oodlab.scores._spec.parse_score_specs`)."""
    from oodlab.scores._spec import parse_score_specs

    return parse_score_specs(text)


def zoo_scores(*, gradients: bool = False) -> list[str]:
    """Every registered score, optionally without those that re-run the network."""
    from oodlab.scores import SCORES

    return [e.name for e in SCORES if gradients or "input_grad" not in e.needs]


def zoo_omitted() -> dict[str, str]:
    """The scores ``--scores zoo`` leaves out, and why (recorded in the results)."""
    from oodlab.scores import SCORES

    return {
        e.name: "needs input gradients (a network pass per batch, one more per tuning "
        f"candidate), so the zoo leaves it out; name it in --scores (e.g. --scores zoo,{e.name})"
        for e in SCORES
        if "input_grad" in e.needs
    }


def resolve_scores(text: str, default: list[str]) -> tuple[list[Any], dict[str, str]]:
    """``--scores``: the score specs, and what ``zoo`` left out and why.

    ``default``: the run's own scores; ``zoo``: every score but the input-gradient ones;
    ``zoo,odin``: the zoo plus the named scores; otherwise the names (and parameters) given.
    """
    from oodlab.scores._spec import spec_name

    if text == "default":
        return parse_score_list(",".join(default)), {}
    specs = parse_score_list(text)
    if ZOO not in [spec_name(s) for s in specs]:
        return specs, {}
    extra = [s for s in specs if spec_name(s) != ZOO]
    named = {spec_name(s) for s in extra}
    scores = [*(n for n in zoo_scores() if n not in named), *extra]
    return scores, {k: v for k, v in zoo_omitted().items() if k not in named}


def tune_config(benchmark: Benchmark, seed: int) -> TuneConfig:
    """``--tune``'s :class:`TuneConfig`: the benchmark's OOD validation set, else (inside
    ``evaluate``) its auxiliary outliers; a one-line error when it has neither."""
    from oodlab.eval.tuning import TuneConfig

    if benchmark.ood_val is None and benchmark.aux is None:
        found = benchmark.info.get("ood_val", "it defines none")
        raise ConfigError(
            f"--tune needs an OOD validation set, and benchmark {benchmark.name!r} has neither "
            f"one (OOD validation set: {found}) nor auxiliary outliers; put OpenOOD's val list "
            "and its images under --data-root, or drop --tune"
        )
    return TuneConfig(seed=seed, ood_val=benchmark.ood_val)


def cmd_eval(args: argparse.Namespace) -> int:
    from oodlab.distributed import check_device_available, init_from_env
    from oodlab.locks import check_writable_folder, folder_lock

    check_device_available(args.device)
    if args.cache_dir is not None:
        check_writable_folder(args.cache_dir, "cache folder")
    info, _ = init_from_env(args.device)  # torchrun: each rank extracts a shard, rank 0 reports
    model, benchmark, default_scores, out = _load(args)
    check_writable_folder(out, "output folder")
    with folder_lock(out, "output folder", "--out", enabled=info.is_main):
        return _evaluate(args, info, model, benchmark, default_scores, out)


def _evaluate(
    args: argparse.Namespace,
    info: Any,
    model: Any,
    benchmark: Any,
    default_scores: list[str],
    out: Path,
) -> int:
    from oodlab.data.class_names import class_names
    from oodlab.distributed import shutdown
    from oodlab.eval.evaluate import evaluate
    from oodlab.eval.extract import ExtractConfig

    if args.scores == "default" and args.protocol:  # the paper's own score(s) and parameters
        from oodlab.eval.protocols import get_protocol

        default_scores = list(get_protocol(args.protocol).scores)
    scores, omitted = resolve_scores(args.scores, default_scores)
    result = evaluate(
        model,
        benchmark.test,
        benchmark.ood,
        scores,
        train=benchmark.train,
        aux=benchmark.aux,
        near=benchmark.near,
        far=benchmark.far,
        class_counts=benchmark.class_counts or None,
        fake_ood=benchmark.fake_ood,
        class_names=class_names(benchmark, args.data_root) or None,
        extract_config=ExtractConfig(
            batch_size=args.batch_size,
            num_workers=args.workers,
            device=args.device,
            cache_dir=args.cache_dir,
            quiet=args.quiet,
        ),
        tune=tune_config(benchmark, args.seed) if args.tune else None,
        skip_unavailable=ZOO in parse_score_list(args.scores),
        omitted=omitted,
        out_dir=out,
    )
    from oodlab.eval.report import results_markdown

    shutdown(info)
    if not info.is_main:
        return 0
    if args.run_dir is not None:  # the run's loss terms and ID accuracy per epoch
        from oodlab.eval.figures import save_training_curves

        save_training_curves(
            {"run": args.run_dir / "train_log.jsonl"}, out / "figures" / "training.png"
        )

    print(results_markdown(result).split("## Per OOD set")[0].rstrip())
    if args.run_dir is not None:
        from oodlab.eval.checkpoint import record_kept_checkpoint

        print(record_kept_checkpoint(args.run_dir, out))
    if args.protocol:
        from oodlab.eval.protocols import get_protocol, paper_comparison, write_comparison

        comparison = paper_comparison(get_protocol(args.protocol), result, args.paper_row)
        if comparison is not None:
            print("\n" + write_comparison(out, comparison).rstrip())
        else:
            print(f"\nprotocol {args.protocol}: {get_protocol(args.protocol).notes}")
    from oodlab.eval.extract import model_protocol

    print(f"\nmodel read through: {model_protocol(model, benchmark.test, args.device)}")
    print(f"\nresults: {out}/results.md (json, csv, figures/ beside it)")
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, Any, list[str], Path]:
    from oodlab.data import build_benchmark

    if args.run_dir is not None:
        if args.checkpoint is not None:
            raise ConfigError("give either a run folder or --checkpoint, not both")
        if not args.run_dir.is_dir():
            raise CheckpointError(
                f"run folder {args.run_dir} does not exist; pass a folder written by `oodlab train`"
            )
        from oodlab.train.run import default_scores_of_run, load_model_from_run, load_run_config

        config = load_run_config(args.run_dir)
        out = args.out or args.run_dir / "eval"
        model = load_model_from_run(args.run_dir)
        data = config.data
        benchmark = build_benchmark(
            data.benchmark, args.data_root or data.data_root, seed=data.seed, **data.options
        )
        from oodlab.eval.checkpoint import with_method_params

        scores = with_method_params(config.method.name, default_scores_of_run(config))
        return model, benchmark, scores, out
    if args.checkpoint is None:
        raise ConfigError("give a run folder, or --checkpoint FILE with --model and --benchmark")
    from oodlab.eval.checkpoint import checkpoint_benchmark, checkpoint_out, load_checkpoint_model

    name, options = checkpoint_benchmark(args)
    if not args.checkpoint.is_file():
        raise CheckpointError(f"checkpoint {args.checkpoint} does not exist; pass a .pt file")
    benchmark = build_benchmark(name, args.data_root, seed=args.seed, **options)
    model, scores = load_checkpoint_model(args, benchmark.num_classes, benchmark.image_shape[0])
    return model, benchmark, scores, checkpoint_out(args)
