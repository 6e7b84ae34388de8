"""NPOS on stored embeddings (the CLIP pipeline): fine-tune a tail with the one loop, then MCM.

The embeddings are a benchmark (``data.benchmark: embeddings``, the files in ``data.options``)
and the fine-tuned tail is a model (``model.name: feature_tail``: residual MLP blocks and a
projection, classifying by cosine to the class text embeddings); this recipe adds NPOS's
``φ`` (the ``bin_logit`` head, ``d → mlp_hidden → 1``) and its loss, so run folder, atomic
checkpoints, bit-identical resume, DDP and logging are the loop's. Usage (nothing is
downloaded, any embedding files work)::

    oodlab train configs/imagenet100/npos_clip_features.yaml --run-dir runs/npos_clip

At the end the run scores its test embeddings with MCM through :func:`oodlab.eval.evaluate`
and writes ``results.json`` (per-epoch losses, ID accuracy, MCM metrics per OOD set and their
mean, OOD = positive); ``oodlab eval RUN`` applies the whole zoo to the same run.

Reference:
    Tao, Du, Zhu & Li, "Non-parametric Outlier Synthesis", ICLR 2023, arXiv:2303.02966,
    Sec. 3 (Eq. 6, ``R_open``) and its CLIP fine-tuning experiments; the settings are the
    official ImageNet-100 script's (synthesis_and_mos.md §2.3); MCM: §4.8.

Notes:
    The paper fine-tunes CLIP's last two transformer blocks on stored token sequences; this
    pipeline fine-tunes a residual MLP tail and the projection on stored embeddings (any
    extractor), so it needs no model at run time. Logits and MCM use per-sample cosine
    similarity, not the code's batch-Frobenius scaling. The code's MultiStepLR ``gamma = 10``
    is reproduced only if the config sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from oodlab.config import TrainConfig, check
from oodlab.errors import ConfigError
from oodlab.io import atomic_write_json
from oodlab.losses.npos import NPOSFeatureLoss
from oodlab.synthesis.npos import NPOSSynthesizer
from oodlab.train.recipes import Batch, Recipe, TrainContext, forward_concat, register_method

PAPER = "Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966"


@dataclass(frozen=True)
class NPOSFeatureOptions:
    """Options of ``npos_features`` (defaults: the ImageNet-100 script, synthesis_and_mos.md §2.3).

    Attributes:
        mlp_hidden: ``φ``'s hidden width (32); mlp_lr_factor: its learning-rate factor (0.1).
        logitnorm_t: LogitNorm ``t`` (8.0); open_weight: ``β`` (0.1); balanced_open.
        start_epoch (10), queue_size (1000), noise_samples (1500), select (300), pick (3),
            keep (2), k (400), sigma (0.1): the synthesis (:class:`NPOSSynthesizer`).
        rejection: ``"topk"`` (default, the paper's intent) or ``"official"`` (the code's
            ranking/return layout mismatch, which matters for ``pick > 1``: the ImageNet-100
            script's ``P = 3``; :mod:`oodlab.synthesis.npos`).
        mcm_temperature: ``τ`` of the MCM score of the final evaluation (1).
    """

    mlp_hidden: int = 32
    mlp_lr_factor: float = 0.1
    logitnorm_t: float = 8.0
    open_weight: float = 0.1
    balanced_open: bool = False
    start_epoch: int = 10
    queue_size: int = 1000
    noise_samples: int = 1500
    select: int = 300
    pick: int = 3
    keep: int = 2
    k: int = 400
    sigma: float = 0.1
    rejection: Literal["topk", "official"] = "topk"
    mcm_temperature: float = 1.0

    def __post_init__(self) -> None:
        check(self.mlp_lr_factor > 0 and self.logitnorm_t > 0, "lr factor and t must be > 0")
        check(self.mcm_temperature > 0, "method.options.mcm_temperature must be > 0")
        check(self.start_epoch >= 0, "method.options.start_epoch must be >= 0")


@register_method("npos_features", config_type=NPOSFeatureOptions, paper=PAPER, default_score="mcm")
class NPOSFeaturesRecipe(Recipe):
    """NPOS's feature-space objective on the tail's embeddings ``e``: LogitNorm CE on the
    cosine logits plus ``β · R_open`` of ``φ`` on ``e`` (ID) and on outliers synthesised from
    the class queues of ``e`` (from ``start_epoch``, once every queue is full)."""

    find_unused_parameters = True  # φ sees no outliers before synthesis starts

    def __init__(self, options: NPOSFeatureOptions | None, class_counts: list[int]) -> None:
        options = options or NPOSFeatureOptions()
        super().__init__(options, class_counts)
        self.heads = {"bin_logit": {"kind": "bin_logit", "hidden": options.mlp_hidden}}
        self.criterion = NPOSFeatureLoss(
            options.logitnorm_t, options.open_weight, options.balanced_open
        )
        self.synthesizer = NPOSSynthesizer(
            len(class_counts),
            options.queue_size,
            options.noise_samples,
            options.select,
            options.pick,
            options.keep,
            options.k,
            options.sigma,
            rejection=options.rejection,
        )

    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        """The tail at ``lr``, ``φ`` at ``lr · mlp_lr_factor`` (the frozen classifier: none)."""
        phi = _phi(model)
        phi_ids = {id(p) for p in phi.parameters()}
        tail = [p for p in model.parameters() if p.requires_grad and id(p) not in phi_ids]
        factor = self.options.mlp_lr_factor
        return [
            {"name": "tail", "params": tail, "lr": config.lr},
            {"name": "phi", "params": list(phi.parameters()), "lr": config.lr * factor},
        ]

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        labels = batch.y
        synthesize = batch.epoch >= self.options.start_epoch

        def outliers(model: nn.Module, e: Tensor) -> dict[str, Tensor]:
            # Inside the forward (one DDP call): queue this batch's e, then draw outliers.
            self.synthesizer.push(e, labels)
            if not (synthesize and self.synthesizer.ready):
                return {}
            sampled = self.synthesizer.sample()
            return {"outlier_logit": model.extra_outputs(sampled, ["bin_logit"])["bin_logit"]}  # type: ignore[operator]

        out = forward_concat(net, [batch.views[0]], ("bin_logit",), outliers)
        terms = self.criterion.terms(
            out["logits"], labels, out["bin_logit"], out.outputs.get("outlier_logit")
        )
        return terms["loss"], {"cls": terms["cls"].detach(), "open": terms["open"].detach()}

    def on_train_end(self, model: nn.Module, context: TrainContext) -> None:
        """Score the test embeddings with MCM through ``evaluate``; write ``results.json``."""
        if not context.is_main:
            return
        benchmark = context.benchmark
        results: dict[str, Any] = {
            "method": "npos_features",
            "score": "mcm",
            "epochs": context.config.train.epochs,
            "train_log": _train_log(context),
        }
        if len(benchmark.test) and benchmark.ood:
            from oodlab.eval.bootstrap import BootstrapConfig
            from oodlab.eval.evaluate import evaluate
            from oodlab.eval.extract import ExtractConfig

            evaluated = evaluate(
                model,
                benchmark.test,
                benchmark.ood,
                [("mcm", {"temperature": self.options.mcm_temperature})],
                far=benchmark.far,
                extract_config=ExtractConfig(
                    device=str(context.device), cache_dir=None, quiet=True
                ),
                bootstrap=BootstrapConfig(samples=0),
            )
            mcm = evaluated.scores["mcm"]
            results |= {"id_accuracy": evaluated.id_accuracy, "ood": mcm.per_set}
            results["mean"] = mcm.means["all"]
        atomic_write_json(context.run_dir / "results.json", results)

    def state_dict(self) -> dict[str, Any]:
        return {"synthesizer": self.synthesizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.synthesizer.load_state_dict(state["synthesizer"])


def _phi(model: nn.Module) -> nn.Module:
    heads = getattr(model, "extra_heads", None)
    if not isinstance(heads, nn.ModuleDict) or "bin_logit" not in heads:
        raise ConfigError("npos_features needs the model's bin_logit head (phi); build it with "
                          "the recipe's heads (oodlab.train.run.build_model)")  # fmt: skip
    return heads["bin_logit"]


def _train_log(context: TrainContext) -> list[dict[str, Any]]:
    from oodlab.train.run import read_log

    rows = [r for r in read_log(context.run_dir) if r["scope"] == "epoch"]
    return [{k: r[k] for k in ("epoch", "loss", "cls", "open")} for r in rows]
