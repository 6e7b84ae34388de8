"""Multi-layer Mahalanobis score with input pre-processing (Lee et al.'s full detector)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import class_means, squared_mahalanobis, tied_precision
from oodlab.scores.base import InputGradientScore, register_score, require_positive


def _layers(model: nn.Module, x: Tensor) -> list[Tensor]:
    getter = getattr(model, "intermediate_features", None)
    if not callable(getter):
        raise DataError(
            f"{type(model).__name__} has no intermediate_features(x); mahalanobis_ensemble needs "
            "the pooled activations of several layers (see oodlab.types.FeatureClassifier)"
        )
    return [f.flatten(1) for f in getter(x)]


@register_score(
    "mahalanobis_ensemble",
    needs=("model", "input_grad", "train_inputs"),
    requires_fit=True,
    paper="Lee, Lee, Lee & Shin, NeurIPS 2018, arXiv:1807.03888",
)
class MahalanobisEnsemble(InputGradientScore):
    """Mahalanobis distances of several layers after input pre-processing, combined; higher =
    more OOD.

    For each layer ``ℓ`` (the model's ``intermediate_features``): class means and a tied
    covariance of the layer's pooled activations on the training set; the input moves by
    ``x̃ = x − ε·sign(∇_x d²_ℓ,ĉ(x))`` towards its closest class ``ĉ`` (Eq. 4, which raises the
    paper's confidence ``−d²``); the layer score is ``min_c d²_ℓ,c(x̃)``. Layer scores are
    standardised with their mean and std on the training set and combined with
    ``layer_weights`` (equal by default).

    Reference:
        Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
        Samples and Adversarial Attacks", NeurIPS 2018, arXiv:1807.03888, Eq. 2, Eq. 4, Alg. 1.
        The paper's confidence is ``−d²`` (higher = more ID); oodlab returns distances.

    Notes:
        The paper (and the MOS repository, synthesis_and_mos.md §4.5 (b)) fits a logistic
        regression on validation ID vs FGSM pseudo-outliers to weight the layers. Without
        such data oodlab standardises and averages; pass ``layer_weights`` (e.g. from such a
        regression) to reproduce the weighted form. Fit with ``fit_inputs(model, batches)``.

    Args:
        epsilon: input pre-processing magnitude ``ε`` (paper grid below; 0 disables it).
        layer_weights: weight of each layer's standardised score; ``None``: equal weights.
    """

    search_space = {"epsilon": (0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01)}

    def __init__(
        self, epsilon: float = 0.0014, layer_weights: Sequence[float] | None = None
    ) -> None:
        require_positive("epsilon", epsilon, allow_zero=True)
        if layer_weights is not None and len(layer_weights) == 0:
            raise ConfigError("layer_weights must be None or one weight per layer")
        self.epsilon = epsilon
        self.layer_weights = layer_weights

    @torch.no_grad()
    def fit_inputs(
        self, model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]
    ) -> MahalanobisEnsemble:
        """Per-layer class means, precisions and score statistics from training batches."""
        model.eval()
        device = next(model.parameters()).device
        per_layer: list[list[Tensor]] = []
        labels = []
        for x, y in batches:
            for i, f in enumerate(_layers(model, x.to(device))):
                if i == len(per_layer):
                    per_layer.append([])
                per_layer[i].append(f.double().cpu())
            labels.append(y.cpu())
        y_all = torch.cat(labels)
        num_classes = int(y_all.max()) + 1
        self.means_, self.precisions_ = [], []
        for chunks in per_layer:
            feats = torch.cat(chunks)
            means = class_means(feats, y_all, num_classes)
            self.means_.append(means)
            self.precisions_.append(tied_precision(feats, y_all, means))
        train_scores = torch.stack(
            [
                squared_mahalanobis(torch.cat(c), m, p).amin(1)
                for c, m, p in zip(per_layer, self.means_, self.precisions_)
            ]
        )
        self.score_mean_ = train_scores.mean(1)
        self.score_std_ = train_scores.std(1).clamp_min(1e-12)
        if self.layer_weights is not None and len(self.layer_weights) != len(self.means_):
            raise ConfigError(
                f"layer_weights has {len(self.layer_weights)} entries, "
                f"the model {len(self.means_)} layers"
            )
        return self

    def score_inputs(self, model: nn.Module, x: Tensor) -> Tensor:
        self._check_fitted("means_", "precisions_", "score_mean_")
        layer_scores = []
        for layer, (means, precision) in enumerate(zip(self.means_, self.precisions_)):
            x_tilde = x.detach()
            if self.epsilon > 0:
                x_grad = x.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    f = _layers(model, x_grad)[layer].double()
                    d2 = squared_mahalanobis(f, means.to(f.device), precision.to(f.device))
                    (grad,) = torch.autograd.grad(d2.amin(1).sum(), x_grad)
                x_tilde = x.detach() - self.epsilon * torch.where(grad >= 0, 1.0, -1.0).to(x.dtype)
            with torch.no_grad():
                f = _layers(model, x_tilde)[layer].double()
                layer_scores.append(
                    squared_mahalanobis(f, means.to(f.device), precision.to(f.device)).amin(1).cpu()
                )
        standardised = (torch.stack(layer_scores) - self.score_mean_[:, None]) / self.score_std_[
            :, None
        ]
        weights = torch.tensor(self.layer_weights or [1.0] * len(layer_scores), dtype=torch.float64)
        return (weights[:, None] * standardised).sum(0).float() / weights.abs().sum().float()
