"""NPOS: non-parametric outlier synthesis from class-conditional queues of ID embeddings.

Per class ``c`` (queue ``Q_c`` of ``M`` unnormalised embeddings, ``Q̂_c`` its L2-normalised
rows): boundary points are the ``select`` queue rows with the largest squared distance
``d_K`` to their ``K``-th nearest row of ``Q̂_c`` (the row itself is its first neighbour);
``P`` of them are drawn at random; around each, ``S`` Gaussian candidates ``q_b + σ ε_s``
(the same ``ε_1..ε_S`` for every class and boundary point of a step) are built in the
unnormalised space; of each boundary point's ``S`` candidates, the ``R`` whose normalised
``d_K`` to ``Q̂_c`` is largest are kept (unnormalised). A step yields ``C · P · R`` outliers.

Nearest neighbours are exact and brute force (one batched matmul over the classes and a
top-k, on the queues' device): at NPOS sizes (``M = 1000``, ``S · P ≤ 4500`` queries per class)
this is cheaper than building an index per class and step, and it keeps everything on the GPU.

Reference:
    Tao, Du, Zhu & Li, "Non-parametric Outlier Synthesis", ICLR 2023, arXiv:2303.02966,
    Sec. 3 and Fig. 1 (b)-(c): boundary selection by k-NN distance, Gaussian sampling,
    rejection by k-NN distance; the details follow the official code (synthesis_and_mos.md
    §2.2), as the paper's full text could not be checked.

Notes:
    * The official code ranks the candidates of ``P`` boundary points in a ``(S, P)`` view of
      a ``P``-blocked vector and then gathers with the other layout, so for ``P > 1`` it keeps
      candidates other than the ranked ones (and crashes for ``P = 1, R > 1``). oodlab keeps,
      for each boundary point, its own ``R`` farthest candidates, the intended behaviour.
    * The CIFAR code re-zeroes the queues at every epoch start while their "full" state
      persists; oodlab keeps one persistent queue and offers that behaviour as
      ``reset_each_epoch`` (zero rows then sit at the origin, at distance 1 from every unit
      vector, where the code's division gives NaN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import normalize

from oodlab.errors import ConfigError, DataError


def kth_sqdist(bank: Tensor, queries: Tensor, k: int) -> Tensor:
    """Squared L2 distance ``(..., N)`` of each query to its ``k``-th nearest row of ``bank``.

    ``bank`` ``(..., M, d)`` and ``queries`` ``(..., N, d)`` share leading (class) dimensions;
    brute force: ``‖q‖² − 2 q·b + ‖b‖²`` by one batched matmul, then a top-k.
    """
    if not 1 <= k <= bank.shape[-2]:
        raise ConfigError(f"k={k} must be in [1, queue size {bank.shape[-2]}]")
    d2 = (
        (queries * queries).sum(-1, keepdim=True)
        - 2 * queries @ bank.mT
        + (bank * bank).sum(-1)[..., None, :]
    )
    return d2.topk(k, dim=-1, largest=False).values[..., k - 1].clamp_min(0)


def select_boundary(bank: Tensor, k: int, select: int) -> Tensor:
    """Indices ``(..., select)`` of the rows of ``bank`` ``(..., M, d)`` (normalised) with the
    largest ``d_K``, in descending order.

    The bank is queried against itself, so a row's first neighbour is itself (distance 0),
    as in the official flat-index search.
    """
    if not 1 <= select <= bank.shape[-2]:
        raise ConfigError(f"select={select} must be in [1, queue size {bank.shape[-2]}]")
    return kth_sqdist(bank, bank, k).topk(select, dim=-1).indices


def gaussian_candidates(anchors: Tensor, noise: Tensor, sigma: float) -> Tensor:
    """``(..., P, S, d)`` candidates ``anchors[..., p, :] + σ · noise[s]`` (covariance ``σ² I``)."""
    return anchors[..., :, None, :] + sigma * noise.to(anchors)


def reject_farthest(candidates: Tensor, bank: Tensor, k: int, keep: int) -> Tensor:
    """Per boundary point, its ``keep`` candidates farthest (``d_K``) from the normalised ``bank``.

    Args:
        candidates: ``(..., P, S, d)`` unnormalised candidates, ``S`` per boundary point.
        bank: ``(..., M, d)`` normalised queue ``Q̂_c``.
        k: which neighbour; keep: ``R ≤ S``.

    Returns:
        ``(..., P, keep, d)`` unnormalised candidates, each point's in descending ``d_K``.
    """
    *lead, num_points, num_samples, dim = candidates.shape
    if not 1 <= keep <= num_samples:
        raise ConfigError(f"keep={keep} must be in [1, candidates per point {num_samples}]")
    flat = normalize(candidates.reshape(*lead, num_points * num_samples, dim), dim=-1)
    dist = kth_sqdist(bank, flat, k).view(*lead, num_points, num_samples)
    chosen = dist.topk(keep, dim=-1).indices
    return torch.gather(candidates, -2, chosen[..., None].expand(*chosen.shape, dim))


def synthesize(
    queues: Tensor,
    noise: Tensor,
    k: int,
    select: int,
    pick: int,
    sigma: float,
    keep: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """NPOS outliers ``(C, pick · keep, d)`` from unnormalised class queues ``(C, M, d)``.

    ``noise`` ``(S, d)`` are the step's shared standard-normal vectors; each class's ``pick``
    boundary points are drawn uniformly without replacement from its ``select`` boundary rows
    (the order of ``rand(C, select).argsort()``, drawn with ``generator`` on the CPU; torch's
    global generator when ``None``, so checkpoints restore it).
    """
    if not 1 <= pick <= select:
        raise ConfigError(f"pick={pick} must be in [1, select={select}]")
    bank = normalize(queues, dim=-1)
    boundary = select_boundary(bank, k, select)
    order = torch.rand(len(queues), select, generator=generator).argsort(dim=1)[:, :pick]
    chosen = torch.gather(boundary, 1, order.to(boundary.device))
    anchors = torch.gather(queues, 1, chosen[..., None].expand(-1, -1, queues.shape[-1]))
    kept = reject_farthest(gaussian_candidates(anchors, noise, sigma), bank, k, keep)
    return kept.reshape(len(queues), pick * keep, -1)


class NPOSSynthesizer:
    """Class-conditional FIFO queues of detached ID embeddings and the NPOS sampler on them.

    Args:
        num_classes: ``C``. queue_size: ``M`` (1000). noise_samples: ``S`` (600 CIFAR, 1500
            CLIP). select: boundary set size (200 / 300). pick: ``P`` (2 / 3). keep: ``R``
            (200 / 2). k: neighbour rank ``K`` (300 / 400). sigma: ``σ`` (0.1).
        reset_each_epoch: re-zero the stored rows at each :meth:`new_epoch` while keeping
            the queues counted as full (the official CIFAR code's behaviour; off by default).

    The queues fill slot by slot; :attr:`ready` becomes true once every class holds ``M``
    rows, after which each push drops the oldest rows. State (:meth:`state_dict`) is tensors.
    """

    def __init__(
        self,
        num_classes: int,
        queue_size: int = 1000,
        noise_samples: int = 600,
        select: int = 200,
        pick: int = 2,
        keep: int = 200,
        k: int = 300,
        sigma: float = 0.1,
        reset_each_epoch: bool = False,
    ) -> None:
        if not 1 <= k <= queue_size or not 1 <= pick <= select <= queue_size:
            raise ConfigError(
                f"NPOS needs 1 <= k <= queue_size and 1 <= pick <= select <= queue_size, got "
                f"k={k}, pick={pick}, select={select}, queue_size={queue_size}"
            )
        if not 1 <= keep <= noise_samples or sigma <= 0 or num_classes < 1:
            raise ConfigError(
                f"NPOS needs 1 <= keep <= noise_samples, sigma > 0 and classes >= 1, got "
                f"keep={keep}, noise_samples={noise_samples}, sigma={sigma}, C={num_classes}"
            )
        self.num_classes, self.queue_size, self.noise_samples = (
            num_classes,
            queue_size,
            noise_samples,
        )
        self.select, self.pick, self.keep, self.k, self.sigma = select, pick, keep, k, sigma
        self.reset_each_epoch = reset_each_epoch
        self.queue = torch.zeros(num_classes, queue_size, 0)
        self.counts = torch.zeros(num_classes, dtype=torch.long)

    @property
    def ready(self) -> bool:
        """Whether every class queue is full (synthesis may run)."""
        return bool((self.counts == self.queue_size).all())

    @torch.no_grad()
    def push(self, features: Tensor, labels: Tensor) -> None:
        """Append detached ``features`` ``(N, d)`` to their classes' queues, in batch order."""
        if features.ndim != 2 or len(features) != len(labels):
            raise DataError(
                f"push needs (N, d) features and (N,) labels, got "
                f"{tuple(features.shape)} and {tuple(labels.shape)}"
            )
        if self.queue.shape[2] != features.shape[1]:
            if bool(self.counts.any()):
                raise DataError(
                    f"NPOS queues hold {self.queue.shape[2]}-d rows, got "
                    f"{features.shape[1]}-d features"
                )
            self.queue = torch.zeros(self.num_classes, self.queue_size, features.shape[1])
        # float32 storage: under autocast the features may arrive in half precision.
        self.queue = self.queue.to(features.device, torch.float32)
        feats, labels = features.detach().float(), labels.to(features.device)
        for c in labels.unique().tolist():
            n = int(self.counts[c])
            rows = torch.cat([self.queue[c, :n], feats[labels == c]])[-self.queue_size :]
            self.queue[c, : len(rows)] = rows
            self.counts[c] = len(rows)

    def new_epoch(self) -> None:
        """At an epoch start: re-zero the rows if ``reset_each_epoch`` (the code's behaviour)."""
        if self.reset_each_epoch:
            self.queue.zero_()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """``(C · P · R, d)`` outliers from the current queues (class-major order)."""
        if not self.ready:
            raise DataError("NPOS synthesis needs every class queue full; push more features")
        noise = torch.randn(self.noise_samples, self.queue.shape[2], generator=generator)
        noise = noise.to(self.queue.device)
        # Classes in chunks: the (classes, P·S, M) distance block stays under ~64 MB.
        per_class = self.pick * self.noise_samples * self.queue_size
        chunk = max(1, (1 << 24) // per_class)
        out = [
            synthesize(q, noise, self.k, self.select, self.pick, self.sigma, self.keep, generator)
            for q in self.queue.split(chunk)
        ]
        return torch.cat(out).reshape(-1, self.queue.shape[2])

    def state_dict(self) -> dict[str, Any]:
        return {"queue": self.queue.detach().cpu().clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = state["queue"].clone()
        self.counts = state["counts"].clone().long()
