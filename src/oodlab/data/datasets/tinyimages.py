"""The 300K random images of TinyImages (Hendrycks et al.), the auxiliary outliers of PASCL,
ImOOD and PATT: one ``.npy`` file of uint8 ``(300000, 32, 32, 3)``, memory-mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oodlab.data.datasets.base import TensorImageDataset, register_dataset
from oodlab.errors import DataError, DatasetNotFoundError

FILE = "300K_random_images.npy"


@register_dataset(
    "tinyimages_300k", paper="Hendrycks, Mazeika & Dietterich, ICLR 2019, arXiv:1812.04606"
)
def tinyimages_300k(data_root: str | Path, num_images: int | None = 30000) -> TensorImageDataset:
    """The first ``num_images`` images (PASCL's and ImOOD's default 30,000; ``None`` = all).

    The file is memory-mapped (``allow_pickle=False``) and only the requested rows are read.
    """
    candidates = [Path(data_root) / FILE, Path(data_root) / "tinyimages80m" / FILE]
    path = next((p for p in candidates if p.is_file()), candidates[0])
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} not found: expected {FILE} (uint8, N×32×32×3) in {data_root} or its "
            "tinyimages80m/ sub-folder; it is the "
            "'300K random images' release of Outlier Exposure (Hendrycks et al. 2019)"
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # object arrays, truncated, not an .npy
        raise DataError(
            f"{path} is not a readable uint8 .npy array ({str(exc).splitlines()[0]}); "
            "obtain the file again"
        ) from None
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (32, 32, 3):
        raise DataError(f"{path} holds {array.dtype} {array.shape}; expected uint8 (N, 32, 32, 3)")
    rows = array[: num_images if num_images is not None else len(array)]
    images = torch.from_numpy(np.array(rows)).permute(0, 3, 1, 2).contiguous()  # reads the rows
    return TensorImageDataset(
        images, np.full(len(images), -1), name=f"tinyimages300k-{len(images)}"
    )
