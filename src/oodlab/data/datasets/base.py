"""The dataset registry and the in-memory image dataset that the readers build.

Readers (one file per on-disk format beside this one) register with ``@register_dataset``;
:class:`TensorImageDataset` holds decoded images as one ``uint8`` tensor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from oodlab.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

Transform = Callable[[Tensor], Tensor]


class TensorImageDataset(Dataset[tuple[Tensor, int]]):
    """Images held in memory as one ``uint8`` tensor ``(N, C, H, W)``, with integer labels.

    Without a transform an item is the image scaled to ``float32`` in ``[0, 1]``.
    ``images`` stays accessible so a training loop can move the whole set to the
    device and augment batches there (the small-image speed lever).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | np.ndarray | list[int],
        transform: Transform | None = None,
        name: str = "tensor",
    ) -> None:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.targets = labels
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        x = self.transform(image) if self.transform is not None else image.float() / 255
        return x, int(self.targets[index])

    def fingerprint(self) -> str:
        """Identity for the extraction cache: name, size, and a hash of the pixels and labels."""
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.targets.numpy().tobytes())
        return f"{self.name}-n{len(self)}-{digest.hexdigest()[:16]}-{self.transform!r}"
