"""Seeding: one call that seeds every generator a run draws from (recorded in the run's config)."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's (legacy global) and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global state other code may draw from)
    torch.manual_seed(seed)
