"""NPOS from scratch: prototype (CIDER) representation learning plus an uncertainty MLP that
separates ID embeddings from outliers synthesised non-parametrically in feature space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from oodlab.config import RunConfig, TrainConfig, check
from oodlab.data.transforms import MultiView
from oodlab.losses.npos import NPOSLoss
from oodlab.synthesis.npos import NPOSSynthesizer
from oodlab.train.recipes import Batch, Recipe, Stage, forward_concat, register_method

PAPER = "Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966"


@dataclass(frozen=True)
class NPOSOptions:
    """Options of ``npos`` (defaults: the CIFAR-10 script, synthesis_and_mos.md §2.4).

    Attributes:
        proj_dim: projection size (128). mlp_hidden: hidden width of ``φ`` (128).
        proto_momentum: prototype EMA ``α`` (0.95 CIFAR-10, 0.5 CIFAR-100).
        temperature, base_temperature: ``τ`` (0.1) and the compactness ``τ₀`` (0.07).
        disp_weight, comp_weight, open_weight: 0.5, 1, ``β`` = 0.1.
        balanced_open: average the uncertainty BCE per side (the code averages jointly).
        start_epoch: first epoch (0-based) with synthesis (200 of 500).
        queue_size, noise_samples, select, pick, keep, k, sigma: ``M`` 1000, ``S`` 600,
            boundary set 200, ``P`` 2, ``R`` 200, ``K`` 300, ``σ`` 0.1.
        reset_queue_each_epoch: re-zero the queues at each epoch start (the code's bug).
        reset_rows: how re-zeroed rows count: ``"origin"`` (points at the origin, never
            picked) or ``"official"`` (the code's NaN rows under faiss-CPU: picked first).
        rejection: ``"topk"`` (each boundary point's own ``R`` farthest candidates, the
            paper's intent) or ``"official"`` (the code's ranking/return layout mismatch).
            The released CIFAR numbers come from ``official`` + ``reset_queue_each_epoch``
            with ``reset_rows: official`` (:mod:`oodlab.synthesis.npos`).
        mlp_lr_factor: ``φ``'s learning-rate factor (0.1, intended; the code's scheduler
            overwrites it, so 1.0 reproduces what the code runs).
        views_transform: ``"npos"``: each view is RandomResizedCrop(``image_size``, scale
            0.2-1), flip, colour jitter (p 0.8), grayscale (p 0.2), as the paper (the model
            normalises: set ``model.mean``/``std``); ``"batch"``: the benchmark's in-memory
            batch augmentation (``data.crop_padding``, ``data.flip``), for grayscale sets.
        num_views: augmented views per image (2 as the paper; 1 halves the cost of a step,
            for CPU budgets: the prototype loss needs no view pairs).
        probe_weight: weight of a cross-entropy that trains the linear classifier on
            *detached* features (a linear probe for accuracy and logit scores; it does not
            touch the representation). 0 leaves the classifier untrained, as the code.
    """

    proj_dim: int = 128
    mlp_hidden: int = 128
    proto_momentum: float = 0.95
    temperature: float = 0.1
    base_temperature: float = 0.07
    disp_weight: float = 0.5
    comp_weight: float = 1.0
    open_weight: float = 0.1
    balanced_open: bool = False
    start_epoch: int = 200
    queue_size: int = 1000
    noise_samples: int = 600
    select: int = 200
    pick: int = 2
    keep: int = 200
    k: int = 300
    sigma: float = 0.1
    reset_queue_each_epoch: bool = False
    reset_rows: Literal["origin", "official"] = "origin"
    rejection: Literal["topk", "official"] = "topk"
    mlp_lr_factor: float = 0.1
    probe_weight: float = 1.0
    views_transform: Literal["batch", "npos"] = "batch"
    num_views: int = 2
    image_size: int = 32

    def __post_init__(self) -> None:
        check(self.start_epoch >= 0, f"method.options.start_epoch must be >= 0: {self.start_epoch}")
        check(self.mlp_lr_factor > 0, "method.options.mlp_lr_factor must be > 0")
        check(self.probe_weight >= 0, "method.options.probe_weight must be >= 0")
        check(
            1 <= self.k <= self.queue_size and 1 <= self.pick <= self.select <= self.queue_size,
            "method.options need 1 <= k <= queue_size and 1 <= pick <= select <= queue_size, "
            f"got k={self.k}, pick={self.pick}, select={self.select}, queue={self.queue_size}",
        )
        check(
            1 <= self.keep <= self.noise_samples and self.sigma > 0,
            f"method.options need 1 <= keep <= noise_samples and sigma > 0, got keep="
            f"{self.keep}, noise_samples={self.noise_samples}, sigma={self.sigma}",
        )
        check(0 <= self.proto_momentum < 1, "method.options.proto_momentum must be in [0, 1)")
        check(
            self.num_views in (1, 2), f"method.options.num_views must be 1 or 2: {self.num_views}"
        )


@register_method(
    "npos",
    config_type=NPOSOptions,
    paper=PAPER,
    default_score="knn",
    score_params={"knn": {"k": 300}},  # the official test scripts' K (synthesis_and_mos.md §2.4)
)
class NPOSRecipe(Recipe):
    """Two views, one forward; ``w_d L_disp + w_c L_comp + β L_open (+ probe CE)``.

    From ``start_epoch`` on, once every class queue of penultimate features is full, each
    step synthesises ``C · P · R`` outliers (:class:`~oodlab.synthesis.npos.NPOSSynthesizer`)
    inside the forward and scores them with the ``bin_logit`` head ``φ`` (ID = 1). Score: KNN
    on the penultimate features (``default_score="knn"``; the paper uses ``k = 300``).

    Reference:
        Tao, Du, Zhu & Li, "Non-parametric Outlier Synthesis", ICLR 2023, arXiv:2303.02966,
        Sec. 3, Fig. 1, Eq. 6 (``R_open``) and Eq. 8 (representation loss);
        synthesis_and_mos.md §2.2, §2.4 (settings from the official CIFAR scripts).

    Notes:
        * Prototypes start as the normalised class means of the first batch's projections
          (classes absent from it start at their first sample, through the EMA); the code
          uses the untrained model's means on the test set, which no recipe hook can reach.
        * Each step first pushes both views' features into the queues, then synthesises,
          as the code. Under DDP each process keeps queues of its own share of the batch.
        * The linear classifier learns as a detached linear probe (``probe_weight``).
    """

    views = 2
    find_unused_parameters = True  # φ is idle before synthesis starts

    def __init__(self, options: NPOSOptions, class_counts: Sequence[int]) -> None:
        super().__init__(options, class_counts)
        o = options
        self.views = o.num_views
        self.heads = {
            "projection": {"kind": "projection", "out_dim": o.proj_dim},
            "bin_logit": {"kind": "bin_logit", "hidden": o.mlp_hidden},
        }
        self.criterion = NPOSLoss(
            self.num_classes, o.proj_dim, o.proto_momentum, o.temperature,
            o.base_temperature, o.disp_weight, o.comp_weight, o.open_weight, o.balanced_open,
        )  # fmt: skip
        self.synthesizer = NPOSSynthesizer(
            self.num_classes, o.queue_size, o.noise_samples, o.select, o.pick, o.keep, o.k,
            o.sigma, o.reset_queue_each_epoch, o.rejection, o.reset_rows,
        )  # fmt: skip
        self.epoch = 0
        self.initialised = False

    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        """The base groups, with ``φ`` split off at ``lr · mlp_lr_factor``."""
        phi = {id(p) for p in model.get_submodule("extra_heads.bin_logit").parameters()}
        groups = []
        for group in super().param_groups(model, config):
            rest = [p for p in group["params"] if id(p) not in phi]
            if rest:
                groups.append({**group, "params": rest})
        mlp = [p for p in model.parameters() if id(p) in phi and p.requires_grad]
        lr = config.lr * self.options.mlp_lr_factor
        return [*groups, {"name": "uncertainty_mlp", "params": mlp, "lr": lr}]

    def stages(self, config: RunConfig) -> list[Stage]:
        transform = None
        if self.options.views_transform == "npos":
            size = self.options.image_size
            view = v2.Compose(
                [v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
                 v2.RandomHorizontalFlip(),
                 v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                 v2.RandomGrayscale(0.2), v2.ToDtype(torch.float32, scale=True)]
            )  # fmt: skip
            transform = view if self.views == 1 else MultiView(view, n=self.views)
        return [Stage("main", config.train, views=self.views, transform=transform)]

    def on_epoch_start(self, epoch: int, stage: Stage) -> None:
        self.epoch = epoch
        self.synthesizer.new_epoch()

    def loss(self, net: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        y = batch.y.repeat(len(batch.views))
        synthesise = self.epoch >= self.options.start_epoch

        def extra(model: nn.Module, h: Tensor) -> dict[str, Tensor]:
            self.synthesizer.push(h, y)
            out = {"probe_logits": model.head(h.detach())}  # type: ignore[operator]
            if synthesise and self.synthesizer.ready:
                v = self.synthesizer.sample().to(h.dtype)
                phi = model.extra_outputs(v, ("bin_logit",))  # type: ignore[operator]
                out["outlier_logit"] = phi["bin_logit"]
            return out

        out = forward_concat(net, batch.views, heads=("projection", "bin_logit"), fn=extra)
        z = out["projection"]
        criterion = self.criterion.to(z.device)
        if not self.initialised:
            criterion.init_prototypes(z.detach(), y)
            self.initialised = True
        outliers = out.outputs.get("outlier_logit")
        terms = criterion.terms(z, y, out["bin_logit"], outliers)
        probe = nn.functional.cross_entropy(out["probe_logits"].float(), y)
        loss = terms.pop("loss") + self.options.probe_weight * probe
        logs = {k: v.detach() for k, v in terms.items()}
        logs["probe_ce"] = probe.detach()
        logs["outliers"] = torch.tensor(float(0 if outliers is None else len(outliers)))
        return loss, logs

    def state_dict(self) -> dict[str, Any]:
        return {
            "synthesizer": self.synthesizer.state_dict(),
            "prototypes": self.criterion.prototypes.detach().cpu().clone(),
            "initialised": self.initialised,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.synthesizer.load_state_dict(state["synthesizer"])
        self.criterion.prototypes.copy_(state["prototypes"])
        self.initialised = bool(state["initialised"])
