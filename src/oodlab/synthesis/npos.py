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
    Two behaviours of the official code (training_from_scratch/KNN.py and train_CIFAR*.py @
    583c06d) are reproduced on request; the defaults are the paper's intent. Which of them
    produced the published numbers: the released CIFAR code has both (``rejection="official"``
    with ``P = 2``, and the per-epoch re-zeroing), so the paper's CIFAR numbers come from them;
    its ImageNet-1k CLIP script uses ``P = 1`` (where the two rejections agree) and a
    persistent queue.

    * **Rejection** (``rejection``). The code stacks the ``S`` candidates of each of the ``P``
      boundary points as ``P`` blocks (flat index ``p·S + s``), ranks ``d_K`` in a ``(S, P)``
      view of that vector (entry ``(r, p)`` is flat index ``r·P + p``), takes the top ``R``
      down each column, and returns flat index ``p·S + r``: for ``P > 1`` it keeps candidates
      other than the ranked ones (an effectively random ``R`` of each point's ``S``).
      ``"topk"`` (default) keeps each boundary point's own ``R`` farthest candidates;
      ``"official"`` reproduces the code's selection exactly. With ``P = 1`` both agree (the
      code then crashes for ``R > 1``; oodlab does not).
    * **Queue reset** (``reset_each_epoch`` + ``reset_rows``). The CIFAR code re-zeroes the
      queues at every epoch start while their "full" state persists, so early steps of each
      epoch search queues with zero rows. ``reset_rows="origin"`` keeps zero rows as points at
      the origin (normalised to 0: distance 1 from every unit vector; never boundary points).
      ``reset_rows="official"`` reproduces faiss-CPU on the code's ``0/0``: a zero row
      normalises to NaN, is never anyone's neighbour, and as a query has every distance
      ``+∞`` (faiss fills missing neighbours with ``+∞``), so zero rows are picked as boundary
      points first and their candidates are ``σ·ε`` around the origin; a candidate with fewer
      than ``K`` non-zero rows in its queue has ``d_K = +∞``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn.functional import normalize

from oodlab.errors import ConfigError, DataError

Rejection = Literal["topk", "official"]
ResetRows = Literal["origin", "official"]


def kth_sqdist(
    bank: Tensor,
    queries: Tensor,
    k: int,
    bank_valid: Tensor | None = None,
    query_valid: Tensor | None = None,
) -> Tensor:
    """Squared L2 distance ``(..., N)`` of each query to its ``k``-th nearest row of ``bank``.

    ``bank`` ``(..., M, d)`` and ``queries`` ``(..., N, d)`` share leading (class) dimensions;
    brute force: ``‖q‖² − 2 q·b + ‖b‖²`` by one batched matmul, then a top-k. Rows with
    ``bank_valid`` false are never neighbours and queries with ``query_valid`` false get
    ``+∞`` (faiss on NaN rows); fewer than ``k`` valid neighbours give ``+∞``.
    """
    if not 1 <= k <= bank.shape[-2]:
        raise ConfigError(f"k={k} must be in [1, queue size {bank.shape[-2]}]")
    d2 = (
        (queries * queries).sum(-1, keepdim=True)
        - 2 * queries @ bank.mT
        + (bank * bank).sum(-1)[..., None, :]
    ).clamp_min(0)
    if bank_valid is not None:
        d2 = d2.masked_fill(~bank_valid[..., None, :], float("inf"))
    if query_valid is not None:
        d2 = d2.masked_fill(~query_valid[..., :, None], float("inf"))
    return d2.topk(k, dim=-1, largest=False).values[..., k - 1]


def _largest(values: Tensor, count: int, dim: int = -1) -> Tensor:
    """Indices of the ``count`` largest entries along ``dim``, descending; ties (e.g. ``+∞``)
    in index order (a stable sort, so the result does not depend on the backend)."""
    return values.sort(dim=dim, descending=True, stable=True).indices.narrow(dim, 0, count)


def select_boundary(bank: Tensor, k: int, select: int, valid: Tensor | None = None) -> Tensor:
    """Indices ``(..., select)`` of the rows of ``bank`` ``(..., M, d)`` (normalised) with the
    largest ``d_K``, in descending order.

    The bank is queried against itself, so a row's first neighbour is itself (distance 0),
    as in the official flat-index search. ``valid`` marks the rows that are not NaN in the
    official code (:func:`kth_sqdist`).
    """
    if not 1 <= select <= bank.shape[-2]:
        raise ConfigError(f"select={select} must be in [1, queue size {bank.shape[-2]}]")
    return _largest(kth_sqdist(bank, bank, k, valid, valid), select)


def gaussian_candidates(anchors: Tensor, noise: Tensor, sigma: float) -> Tensor:
    """``(..., P, S, d)`` candidates ``anchors[..., p, :] + σ · noise[s]`` (covariance ``σ² I``)."""
    return anchors[..., :, None, :] + sigma * noise.to(anchors)


def reject_farthest(
    candidates: Tensor,
    bank: Tensor,
    k: int,
    keep: int,
    rejection: Rejection = "topk",
    bank_valid: Tensor | None = None,
) -> Tensor:
    """Per boundary point, ``keep`` of its candidates, chosen by ``d_K`` to the normalised
    ``bank``: its own farthest (``"topk"``) or the official code's (module Notes).

    Args:
        candidates: ``(..., P, S, d)`` unnormalised candidates, ``S`` per boundary point.
        bank: ``(..., M, d)`` normalised queue ``Q̂_c``; bank_valid: its non-NaN rows.
        k: which neighbour; keep: ``R ≤ S``; rejection: ``"topk"`` or ``"official"``.

    Returns:
        ``(..., P, keep, d)`` unnormalised candidates, each point's in descending rank order.
    """
    *lead, num_points, num_samples, dim = candidates.shape
    if not 1 <= keep <= num_samples:
        raise ConfigError(f"keep={keep} must be in [1, candidates per point {num_samples}]")
    if rejection not in ("topk", "official"):
        raise ConfigError(f"rejection must be 'topk' or 'official', got {rejection!r}")
    flat = normalize(candidates.reshape(*lead, num_points * num_samples, dim), dim=-1)
    dist = kth_sqdist(bank, flat, k, bank_valid)  # (..., P·S), flat index p·S + s
    if rejection == "topk":
        chosen = _largest(dist.view(*lead, num_points, num_samples), keep)
    else:  # ranked in the (S, P) view, column p read back as rows p·S + r
        chosen = _largest(dist.view(*lead, num_samples, num_points), keep, dim=-2).mT
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
    rejection: Rejection = "topk",
    reset_rows: ResetRows = "origin",
) -> Tensor:
    """NPOS outliers ``(C, pick · keep, d)`` from unnormalised class queues ``(C, M, d)``.

    ``noise`` ``(S, d)`` are the step's shared standard-normal vectors; each class's ``pick``
    boundary points are drawn uniformly without replacement from its ``select`` boundary rows
    (the order of ``rand(C, select).argsort()``, drawn with ``generator`` on the CPU; torch's
    global generator when ``None``, so checkpoints restore it). ``rejection`` and
    ``reset_rows`` (how all-zero rows count) are explained in the module Notes.
    """
    if not 1 <= pick <= select:
        raise ConfigError(f"pick={pick} must be in [1, select={select}]")
    if reset_rows not in ("origin", "official"):
        raise ConfigError(f"reset_rows must be 'origin' or 'official', got {reset_rows!r}")
    bank = normalize(queues, dim=-1)
    valid = (queues != 0).any(-1) if reset_rows == "official" else None
    boundary = select_boundary(bank, k, select, valid)
    order = torch.rand(
        len(queues), select, generator=generator, device=_draw_device(generator, queues.device)
    ).argsort(dim=1)[:, :pick]
    chosen = torch.gather(boundary, 1, order.to(boundary.device))
    anchors = torch.gather(queues, 1, chosen[..., None].expand(-1, -1, queues.shape[-1]))
    candidates = gaussian_candidates(anchors, noise, sigma)
    kept = reject_farthest(candidates, bank, k, keep, rejection, valid)
    return kept.reshape(len(queues), pick * keep, -1)


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Where random draws are made: on ``device`` with the global generators (no host copy;
    on the CPU the same draws as before), else on the ``generator``'s own device."""
    return device if generator is None else generator.device


def fifo_push(queue: Tensor, counts: Tensor, features: Tensor, labels: Tensor) -> Tensor:
    """``queue`` ``(C, M, d)`` after appending each class's rows of ``features`` in batch order
    and keeping its last ``M`` rows (``counts`` ``(C,)`` are filled, updated in place).

    Without a data-dependent shape or a host sync: each final slot ``(c, j)`` reads its row from
    the old queue or from the batch by one gather (a stable sort groups the batch by class).
    Pure copies, so it equals the per-class loop exactly (a test checks it)."""
    num_classes, size, _ = queue.shape
    n = len(labels)
    if n == 0:
        return queue
    new = torch.zeros_like(counts).scatter_add_(0, labels, torch.ones_like(labels))
    order = torch.sort(labels, stable=True).indices
    start = torch.cumsum(new, 0) - new
    total = counts + new
    kept = total.clamp(max=size)
    slot = torch.arange(size, device=queue.device)[None, :]
    source = slot + (total - kept)[:, None]  # index into concat(old rows, new rows) per class
    row = torch.arange(num_classes, device=queue.device)[:, None] * size
    from_batch = order[(start[:, None] + source - counts[:, None]).clamp(0, n - 1)]
    from_old = row + source.clamp(max=size - 1)
    index = torch.where(source < counts[:, None], from_old, num_classes * size + from_batch)
    index = torch.where(slot < kept[:, None], index, row + slot)  # slots past the fill: kept
    combined = torch.cat([queue.reshape(num_classes * size, -1), features])
    counts.copy_(kept)
    return combined[index.reshape(-1)].reshape(queue.shape)


class NPOSSynthesizer:
    """Class-conditional FIFO queues of detached ID embeddings and the NPOS sampler on them.

    Args:
        num_classes: ``C``. queue_size: ``M`` (1000). noise_samples: ``S`` (600 CIFAR, 1500
            CLIP). select: boundary set size (200 / 300). pick: ``P`` (2 / 3). keep: ``R``
            (200 / 2). k: neighbour rank ``K`` (300 / 400). sigma: ``σ`` (0.1).
        reset_each_epoch: re-zero the stored rows at each :meth:`new_epoch` while keeping
            the queues counted as full (the official CIFAR code's behaviour; off by default).
        rejection: ``"topk"`` (default) or ``"official"``; reset_rows: ``"origin"``
            (default) or ``"official"`` (module Notes).

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
        rejection: Rejection = "topk",
        reset_rows: ResetRows = "origin",
    ) -> None:
        if rejection not in ("topk", "official") or reset_rows not in ("origin", "official"):
            raise ConfigError(
                "NPOS needs rejection 'topk' or 'official' and reset_rows 'origin' or "
                f"'official', got {rejection!r} and {reset_rows!r}"
            )
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
        self.rejection: Rejection = rejection
        self.reset_rows: ResetRows = reset_rows
        self.queue = torch.zeros(num_classes, queue_size, 0)
        self.counts = torch.zeros(num_classes, dtype=torch.long)
        self._full = False  # every queue seen full once (counts never decrease)

    @property
    def ready(self) -> bool:
        """Whether every class queue is full (synthesis may run). Counts never decrease, so
        once true it is remembered: no host sync per step after the queues have filled."""
        if not self._full:
            self._full = bool((self.counts == self.queue_size).all())
        return self._full

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
        if feats.device.type != "cpu":  # no host sync: one gather (equal to the loop below)
            self.counts = self.counts.to(feats.device)
            self.queue = fifo_push(self.queue, self.counts, feats, labels.long())
            return
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
        noise = torch.randn(
            self.noise_samples, self.queue.shape[2], generator=generator,
            device=_draw_device(generator, self.queue.device),
        ).to(self.queue.device)  # fmt: skip
        # Classes in chunks: the (classes, P·S, M) distance block stays under ~64 MB.
        per_class = self.pick * self.noise_samples * self.queue_size
        chunk = max(1, (1 << 24) // per_class)
        out = [
            synthesize(
                q,
                noise,
                self.k,
                self.select,
                self.pick,
                self.sigma,
                self.keep,
                generator,
                self.rejection,
                self.reset_rows,
            )
            for q in self.queue.split(chunk)
        ]
        return torch.cat(out).reshape(-1, self.queue.shape[2])

    def state_dict(self) -> dict[str, Any]:
        return {"queue": self.queue.detach().cpu().clone(), "counts": self.counts.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue = state["queue"].clone()
        self.counts = state["counts"].clone().long()
        self._full = False
