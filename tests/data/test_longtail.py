from __future__ import annotations

import numpy as np
import pytest

from oodlab.data.longtail import longtail_counts, longtail_indices
from oodlab.errors import ConfigError, DataError


def test_cifar_lt_counts():
    assert longtail_counts(5000, 10, 0.01) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    counts = longtail_counts(500, 100, 0.01)
    assert sum(counts) == 10847
    assert (counts[0], counts[-1]) == (500, 5)
    assert longtail_counts(100, 4, 0.1, "step") == [100, 100, 10, 10]


def test_first_n_in_original_order_and_random_rule():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2])
    lt = longtail_indices(labels, 0.25, n_max=4)
    # counts int(4 * 0.25^(c/2)) = [4, 2, 1]; first images of each class in file order.
    assert lt.class_counts == [4, 2, 1]
    assert lt.indices.tolist() == [0, 1, 2, 3, 4, 6, 8]
    assert lt.prior.tolist() == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    drawn = longtail_indices(labels, 0.25, n_max=4, rule="random", seed=3)
    again = longtail_indices(labels, 0.25, n_max=4, rule="random", seed=3)
    assert drawn.indices.tolist() == again.indices.tolist()
    assert np.bincount(labels[drawn.indices]).tolist() == [4, 2, 1]


def test_errors():
    with pytest.raises(ConfigError, match="imbalance_ratio"):
        longtail_counts(10, 3, 0.0)
    with pytest.raises(DataError, match="only"):
        longtail_indices(np.array([0, 0, 1]), 0.5, n_max=3)
