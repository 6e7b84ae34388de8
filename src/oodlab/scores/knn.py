"""Deep nearest-neighbour score: distance to the k-th nearest normalised training feature."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from oodlab.errors import ConfigError, DataError
from oodlab.scores._features import l2_normalize
from oodlab.scores.base import Score, register_score, require_in_range
from oodlab.types import Outputs

Backend = Literal["faiss", "torch"]


def knn_distances(
    bank: Tensor, queries: Tensor, k: int, backend: Backend = "faiss", chunk: int = 2048
) -> Tensor:
    """Squared L2 distance ``(N,)`` from each query to its ``k``-th nearest row of ``bank``.

    ``faiss`` uses an exact ``IndexFlatL2``; ``torch`` a chunked ``‖q‖² − 2qbᵀ + ‖b‖²`` matmul
    with ``topk`` (on the device of ``bank``, so it runs on a GPU when the bank is there).
    """
    if not 1 <= k <= len(bank):
        raise DataError(f"k={k} needs at least k training features in the bank, have {len(bank)}")
    if backend == "faiss":
        import faiss

        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(np.ascontiguousarray(bank.detach().cpu().float().numpy()))
        distances, _ = index.search(np.ascontiguousarray(queries.detach().cpu().float().numpy()), k)
        return torch.from_numpy(distances[:, -1]).clamp_min(0)
    bank = bank.float()
    bank_sq = (bank * bank).sum(1)
    out = []
    for block in queries.to(bank.device).float().split(chunk):
        d2 = (block * block).sum(1, keepdim=True) - 2 * block @ bank.T + bank_sq
        out.append(d2.topk(k, dim=1, largest=False).values[:, -1].clamp_min(0).cpu())
    return torch.cat(out)


@register_score(
    "knn",
    needs=("features",),
    requires_fit=True,
    paper="Sun, Ming, Zhu & Li, ICML 2022, arXiv:2204.06507",
)
class KNN(Score):
    """k-th nearest-neighbour distance of L2-normalised features; higher = more OOD.

    Reference:
        Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
        ICML 2022, arXiv:2204.06507, Sec. 3 (Alg. 1). The paper thresholds the negative
        distance ``−‖ẑ − ẑ_(k)‖`` (higher = more ID); oodlab returns the distance itself, squared
        as faiss returns it (a monotone map, so every metric is unchanged).

    Args:
        k: which neighbour (paper: 50 on CIFAR-10, 1000 on ImageNet; OpenOOD grid below).
        bank_fraction: fraction of the training features kept in the bank (the paper
            subsamples 1% on ImageNet), chosen at random with ``seed``.
        backend: ``"faiss"`` (exact flat index) or ``"torch"`` (chunked matmul + top-k).
        seed: seed of the bank subsample.

    Notes:
        A ``k`` larger than the bank is clipped to the bank size, so the OpenOOD grid also
        runs on small training sets.
    """

    search_space = {"k": (50, 100, 200, 500, 1000)}

    def __init__(
        self, k: int = 50, bank_fraction: float = 1.0, backend: Backend = "faiss", seed: int = 0
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        require_in_range("bank_fraction", bank_fraction, 1e-6, 1.0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if backend not in ("faiss", "torch"):
            raise ConfigError(f"backend must be 'faiss' or 'torch', got {backend!r}")
        self.k = k
        self.bank_fraction = bank_fraction
        self.backend = backend
        self.seed = seed

    def fit(self, train: Outputs, *, aux: Outputs | None = None) -> KNN:
        bank = l2_normalize(train.features.float())
        if self.bank_fraction < 1:
            keep = max(1, round(self.bank_fraction * len(bank)))
            generator = torch.Generator().manual_seed(self.seed)
            bank = bank[torch.randperm(len(bank), generator=generator)[:keep].sort().values]
        self.bank_ = bank
        return self

    def score(self, outputs: Outputs) -> Tensor:
        self._check_fitted("bank_")
        k = min(self.k, len(self.bank_))
        return knn_distances(self.bank_, l2_normalize(outputs.features.float()), k, self.backend)
