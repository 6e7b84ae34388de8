"""``oodlab.evaluate``: one call from a model to a benchmark's results.

``evaluate(model, benchmark="fmnist_lt", scores=["msp", "knn"])`` builds the benchmark preset
(``oodlab list benchmarks``) and fills every data argument of
:func:`oodlab.eval.evaluate.evaluate` from it: the ID test set, the OOD sets, the training set
(for the fitted scores), the auxiliary outliers, the near/far grouping, the class counts
(shot-group accuracy, the ImOOD prior) and the fake-OOD images of SC-OOD sets; ``tune=True``
tunes against the benchmark's OOD validation set. ``scores="zoo"`` is every registered score
the model supports (the others are listed in ``result.skipped``). Without ``benchmark`` it is
the plain :func:`~oodlab.eval.evaluate.evaluate` of explicit datasets.

The result's ``meta["model_protocol"]`` says how the model was read (``features/head`` or
the last ``nn.Linear`` by a hook; :func:`oodlab.eval.extract.model_protocol`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from oodlab.data.benchmarks import Benchmark, build_benchmark
from oodlab.errors import ConfigError
from oodlab.eval.evaluate import EvalResult, ScoreSpec
from oodlab.eval.evaluate import evaluate as run_pipeline
from oodlab.eval.extract import ExtractConfig, model_protocol
from oodlab.eval.tuning import TuneConfig

ZOO = "zoo"


def evaluate(
    model: nn.Module,
    id_test: Dataset[Any] | None = None,
    ood: Mapping[str, Dataset[Any]] | None = None,
    scores: Sequence[ScoreSpec] | str = ("msp", "energy"),
    *,
    benchmark: str | Benchmark | None = None,
    data_root: str | Path | None = None,
    seed: int = 0,
    tune: TuneConfig | bool | None = None,
    **kwargs: Any,
) -> EvalResult:
    """Evaluate ``model`` on a benchmark preset (or on explicit datasets); see the module doc.

    Args:
        model: the classifier.
        id_test, ood: explicit ID test and OOD sets; with ``benchmark`` they replace its own.
        scores: score names, ``(name, kwargs)`` pairs, Score objects, or ``"zoo"``.
        benchmark: a preset name or a built :class:`~oodlab.data.benchmarks.Benchmark`.
        data_root: the folder holding the benchmark's datasets (a preset name only).
        seed: the preset's seed (long-tail subsample) and the tuning split's.
        tune: ``True`` tunes with the benchmark's OOD validation set (else its auxiliary
            outliers), or a :class:`TuneConfig`.
        **kwargs: any other argument of :func:`oodlab.eval.evaluate.evaluate` (``train``,
            ``near``, ``class_counts``, ``extract_config``, ``out_dir``...); given ones win.
    """
    if isinstance(scores, str):
        if scores != ZOO:
            raise ConfigError(f"scores must be a list of names or {ZOO!r}, got {scores!r}")
        from oodlab.eval.cli import zoo_scores

        scores = zoo_scores()
        kwargs.setdefault("skip_unavailable", True)
    bench = None
    if benchmark is not None:
        bench = (
            benchmark
            if isinstance(benchmark, Benchmark)
            else build_benchmark(benchmark, data_root, seed=seed)
        )
        id_test = bench.test if id_test is None else id_test
        ood = bench.ood if ood is None else ood
        for key, value in filled_from(bench).items():
            kwargs.setdefault(key, value)
    elif id_test is None or ood is None:
        raise ConfigError(
            "give benchmark='NAME' (oodlab list benchmarks), or id_test and ood datasets"
        )
    if tune is True:
        if bench is None:
            raise ConfigError("tune=True needs a benchmark; pass tune=TuneConfig(ood_val=...)")
        tune = TuneConfig(seed=seed, ood_val=bench.ood_val)
    config = kwargs.get("extract_config") or ExtractConfig()
    protocol = model_protocol(model, id_test, device=config.device)
    result = run_pipeline(model, id_test, ood, scores, tune=tune or None, **kwargs)
    result.meta["model_protocol"] = protocol
    if bench is not None:
        result.meta["benchmark"] = bench.name
    return result


def filled_from(bench: Benchmark) -> dict[str, Any]:
    """The arguments of :func:`~oodlab.eval.evaluate.evaluate` that ``bench`` provides."""
    return {
        "train": bench.train,
        "aux": bench.aux,
        "near": bench.near,
        "far": bench.far,
        "class_counts": bench.class_counts or None,
        "fake_ood": bench.fake_ood or None,
    }
