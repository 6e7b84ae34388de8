"""NPOS losses: CIDER-style prototype compactness/dispersion, the ID-vs-outlier uncertainty
BCE, and the LogitNorm cross-entropy of the CLIP feature-space pipeline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError
from oodlab.losses.base import register_loss
from oodlab.scores._features import l2_normalize


def ema_prototypes(prototypes: Tensor, z: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """Prototypes after ``μ_y ← normalize(α μ_y + (1 − α) z_j)`` for each sample ``j`` in order.

    The update is sequential per sample, as the official code; samples of different classes
    touch different rows, so all classes advance together, one occurrence rank at a time.
    Gradients reach ``z``; ``prototypes`` ``(C, d)`` is not modified in place. Off the CPU
    the rounds use masks instead of selecting rows (:func:`_ema_rounds`: one host sync, for
    the number of rounds, instead of about ``2C``).
    """
    if labels.device.type != "cpu":
        return _ema_rounds(prototypes, z, labels, momentum)
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        where = labels == c
        rank[where] = torch.arange(int(where.sum()), device=labels.device)
    out = prototypes
    for r in range(int(rank.max()) + 1 if len(labels) else 0):
        rows = (rank == r).nonzero().squeeze(1)
        cls = labels[rows]
        mixed = momentum * out[cls] + (1 - momentum) * z[rows]
        out = out.index_copy(0, cls, nn.functional.normalize(mixed, dim=1))
    return out


def _ema_rounds(prototypes: Tensor, z: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """:func:`ema_prototypes` with fixed shapes: round ``r`` updates every class from its
    ``r``-th sample, the other samples writing to a discarded extra row. The same arithmetic
    on the same rows (a test checks values and gradients against the loop)."""
    num, n = len(prototypes), len(labels)
    if n == 0:
        return prototypes
    labels = labels.long()
    per_class = torch.zeros(num, dtype=torch.long, device=labels.device)
    per_class.scatter_add_(0, labels, torch.ones_like(labels))
    order = torch.sort(labels, stable=True).indices
    rank = torch.empty_like(labels)
    first = torch.cumsum(per_class, 0) - per_class
    rank[order] = torch.arange(n, device=labels.device) - first[labels[order]]
    out = torch.cat([prototypes, prototypes.new_zeros(1, prototypes.shape[1])])
    for r in range(int(per_class.max())):  # the one host sync
        target = torch.where(rank == r, labels, num)
        mixed = momentum * out[target] + (1 - momentum) * z
        out = out.index_copy(0, target, nn.functional.normalize(mixed, dim=1))
    return out[:num]


def prototype_dispersion(
    prototypes: Tensor, temperature: float = 0.1, base_temperature: float = 0.1
) -> Tensor:
    """``(τ/τ₀′) · mean_i log[(1/(C−1)) Σ_{j≠i} exp(μ_iᵀμ_j / τ)]`` (NaN rows dropped)."""
    num = len(prototypes)
    if num < 2:
        return prototypes.sum() * 0.0
    sim = prototypes @ prototypes.T / temperature
    off = ~torch.eye(num, dtype=torch.bool, device=sim.device)
    rows = torch.log((sim.exp() * off).sum(1) / (num - 1))
    if rows.device.type != "cpu":  # the same mean without a data-dependent selection
        return temperature / base_temperature * rows.nanmean()
    rows = rows[~torch.isnan(rows)]
    return temperature / base_temperature * rows.mean()


def prototype_compactness(
    z: Tensor,
    prototypes: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
) -> Tensor:
    """``−(τ/τ₀) · mean_i log softmax_c(z_iᵀ μ̂_c / τ)[y_i]`` with normalised prototypes ``μ̂``."""
    logits = z @ l2_normalize(prototypes).T / temperature
    log_prob = torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return -(temperature / base_temperature) * log_prob.mean()


def uncertainty_bce(id_logits: Tensor, outlier_logits: Tensor, balanced: bool = False) -> Tensor:
    """BCE-with-logits of ``φ``: ID logits labelled 1, synthesised outliers labelled 0.

    ``balanced=False`` averages all ``|ID| + |V|`` terms jointly (the official code, where the
    outliers can outnumber the batch 8–80×); ``True`` averages the two sides separately and
    takes their mean.
    """
    bce = nn.functional.binary_cross_entropy_with_logits
    id_terms = bce(id_logits, torch.ones_like(id_logits), reduction="none")
    ood_terms = bce(outlier_logits, torch.zeros_like(outlier_logits), reduction="none")
    if balanced:
        return 0.5 * (id_terms.mean() + ood_terms.mean())
    return torch.cat([id_terms, ood_terms]).mean()


def logitnorm_cross_entropy(logits: Tensor, labels: Tensor, temperature: float = 8.0) -> Tensor:
    """``CE(ℓ / (‖ℓ‖₂ · t), y)`` (LogitNorm; NPOS CLIP pipeline, t = 8)."""
    norms = logits.norm(dim=1, keepdim=True).clamp_min(1e-7)
    return nn.functional.cross_entropy(logits / (norms * temperature), labels)


@register_loss("npos", paper="Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966")
class NPOSLoss(nn.Module):
    """The from-scratch NPOS objective ``w_d L_disp + w_c L_comp + β L_open`` with its prototypes.

    Args:
        num_classes: ``C``; feat_dim: projection size (128).
        proto_momentum: ``α`` of the prototype EMA (0.95 CIFAR-10, 0.5 CIFAR-100).
        temperature: ``τ`` (0.1); base_temperature: ``τ₀`` of the compactness term (0.07).
        disp_weight, comp_weight, open_weight: ``w_d`` (0.5), ``w_c`` (1), ``β`` (0.1).
        balanced_open: average the BCE per side (see :func:`uncertainty_bce`).

    Reference:
        Tao, Du, Zhu & Li, "Non-parametric Outlier Synthesis", ICLR 2023, arXiv:2303.02966,
        Fig. 1: the representation loss (Eq. 8; the CIDER loss of Ming et al., ICLR 2023,
        arXiv:2203.04450) plus the level-set risk ``R_open`` (Eq. 6); constants from the
        official code (synthesis_and_mos.md §2.4).

    Notes:
        The dispersion uses ``τ₀′ = τ`` and the compactness ``τ₀ = 0.07``, the official
        code's constants. The code initialises the prototypes from the class means of the
        untrained model on the *test* loader; the recipe initialises them from the training
        data instead (:meth:`init_prototypes`).
    """

    prototypes: Tensor

    def __init__(
        self,
        num_classes: int,
        feat_dim: int = 128,
        proto_momentum: float = 0.95,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        disp_weight: float = 0.5,
        comp_weight: float = 1.0,
        open_weight: float = 0.1,
        balanced_open: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= proto_momentum < 1 or temperature <= 0 or base_temperature <= 0:
            raise ConfigError(
                f"NPOS needs 0 <= proto_momentum < 1 and temperatures > 0, got "
                f"{proto_momentum}, {temperature}, {base_temperature}"
            )
        self.register_buffer("prototypes", torch.zeros(num_classes, feat_dim))
        self.momentum, self.temperature, self.base_temperature = (
            proto_momentum,
            temperature,
            base_temperature,
        )
        self.weights = (disp_weight, comp_weight, open_weight)
        self.balanced_open = balanced_open

    @torch.no_grad()
    def init_prototypes(self, z: Tensor, labels: Tensor) -> None:
        """Normalised class means of normalised projections ``z``; absent classes keep zeros
        (the EMA then starts them at their first sample)."""
        sums = torch.zeros_like(self.prototypes).index_add_(0, labels, z.to(self.prototypes))
        self.prototypes.copy_(l2_normalize(sums))

    def terms(
        self,
        z: Tensor,
        labels: Tensor,
        id_logits: Tensor | None = None,
        outlier_logits: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Unweighted ``disp``, ``comp``, ``open`` (0 without outliers) and the weighted ``loss``.

        Updates the stored prototypes (detached) with the batch's projections ``z``.
        """
        protos = ema_prototypes(self.prototypes.to(z), z, labels, self.momentum)
        self.prototypes.copy_(protos.detach())
        disp = prototype_dispersion(protos, self.temperature, self.temperature)
        comp = prototype_compactness(
            z, self.prototypes, labels, self.temperature, self.base_temperature
        )
        if id_logits is None or outlier_logits is None or len(outlier_logits) == 0:
            open_ = z.sum() * 0.0
        else:
            open_ = uncertainty_bce(id_logits.float(), outlier_logits.float(), self.balanced_open)
        w_disp, w_comp, w_open = self.weights
        loss = w_disp * disp + w_comp * comp + w_open * open_
        return {"loss": loss, "disp": disp, "comp": comp, "open": open_}

    def forward(
        self,
        z: Tensor,
        labels: Tensor,
        id_logits: Tensor | None = None,
        outlier_logits: Tensor | None = None,
    ) -> Tensor:
        return self.terms(z, labels, id_logits, outlier_logits)["loss"]


@register_loss("npos_features", paper="Tao, Du, Zhu & Li (NPOS), ICLR 2023, arXiv:2303.02966")
class NPOSFeatureLoss(nn.Module):
    """The CLIP pipeline's ``LogitNorm-CE(cos(e, T)) + β · L_open`` (synthesis_and_mos.md §2.3).

    Args:
        temperature: LogitNorm ``t`` (8.0, the official argparse default; see Notes).
        open_weight: ``β`` (0.1). balanced_open: see :func:`uncertainty_bce`.

    Notes:
        The official logits divide the embeddings by the Frobenius norm of the whole batch;
        LogitNorm removes any per-batch scale, so per-sample cosine logits give the same loss.
        ``t = 8`` makes the normalised logits tiny (norm 1/8), probably unintended (LogitNorm
        usually takes t ≈ 0.04), but it is what the code runs.
    """

    def __init__(
        self, temperature: float = 8.0, open_weight: float = 0.1, balanced_open: bool = False
    ) -> None:
        super().__init__()
        if temperature <= 0 or open_weight < 0:
            raise ConfigError(
                f"need temperature > 0 and open_weight >= 0, got {temperature}, {open_weight}"
            )
        self.temperature, self.open_weight, self.balanced_open = (
            temperature,
            open_weight,
            balanced_open,
        )

    def terms(
        self, logits: Tensor, labels: Tensor, id_logits: Tensor, outlier_logits: Tensor | None
    ) -> dict[str, Tensor]:
        cls = logitnorm_cross_entropy(logits, labels, self.temperature)
        if outlier_logits is None or len(outlier_logits) == 0:
            open_ = id_logits.sum() * 0.0
        else:
            open_ = uncertainty_bce(id_logits, outlier_logits, self.balanced_open)
        return {"loss": cls + self.open_weight * open_, "cls": cls, "open": open_}
