"""MCM against hand-worked cosines, scikit-learn's cosine similarity and MSP of cosine logits."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from oodlab.errors import ConfigError, DataError
from oodlab.scores import SCORES
from oodlab.scores.mcm import MCM, mcm
from oodlab.scores.msp import msp
from oodlab.types import Outputs


def cosine_msp(features, embeddings, temperature):
    """MSP of the cosine logits / τ, the cosines from scikit-learn."""
    cosine = torch.from_numpy(
        cosine_similarity(features.double().numpy(), embeddings.double().numpy())
    )
    return msp(cosine / temperature)


def batch_norm_quirk(features, embeddings):
    """NPOS's test code: divide by the Frobenius norm of the whole batch (spec §2.3)."""
    text = embeddings / embeddings.norm(dim=1, keepdim=True)
    return msp(features / features.norm() @ text.T)


def test_two_class_example_by_hand():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    features = torch.tensor([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # Cosines: (1, 0), (1/√2, 1/√2), (−1, 0).
    s0 = math.e / (math.e + 1)
    s2 = 1 / (math.exp(-1) + 1)
    assert mcm(features, embeddings).tolist() == pytest.approx([-s0, -0.5, -s2])
    # τ = 0.5 doubles the cosines: softmax(2, 0).
    assert mcm(features, embeddings, 0.5)[0].item() == pytest.approx(-(math.e**2) / (math.e**2 + 1))


@pytest.mark.parametrize("temperature", [0.01, 1.0, 10.0])
def test_equals_msp_of_cosine_logits(temperature):
    generator = torch.Generator().manual_seed(0)
    features, embeddings = (
        torch.randn(15, 6, generator=generator),
        torch.randn(4, 6, generator=generator),
    )
    torch.testing.assert_close(
        mcm(features, embeddings, temperature), cosine_msp(features, embeddings, temperature)
    )


def test_per_sample_normalisation_unlike_the_batch_norm_quirk():
    generator = torch.Generator().manual_seed(1)
    features, embeddings = (
        torch.randn(5, 6, generator=generator),
        torch.randn(3, 6, generator=generator),
    )
    rescaled = features * torch.tensor([[10.0], [0.1], [1.0], [3.0], [1.0]])
    # MCM: a sample's score ignores its own scale and the rest of its batch ...
    torch.testing.assert_close(mcm(rescaled, embeddings), mcm(features, embeddings))
    torch.testing.assert_close(mcm(features[2:3], embeddings), mcm(features, embeddings)[2:3])
    # ... while the batch-Frobenius quirk changes sample 2's score when the others rescale.
    assert batch_norm_quirk(rescaled, embeddings)[2] != pytest.approx(
        batch_norm_quirk(features, embeddings)[2].item(), rel=1e-3
    )


def test_head_rows_are_the_default_class_embeddings(toy):
    expected = cosine_msp(toy.ood.features, toy.ood.head_weight, 1.0)
    torch.testing.assert_close(MCM().score(toy.ood), expected)
    custom = torch.randn(4, 12, generator=torch.Generator().manual_seed(2))
    expected = cosine_msp(toy.id.features, custom, 0.5)
    torch.testing.assert_close(
        SCORES.create("mcm", class_embeddings=custom, temperature=0.5).score(toy.id), expected
    )


def test_every_hyperparameter_changes_the_scores(toy):
    assert not torch.equal(
        MCM(temperature=0.01).score(toy.ood), MCM(temperature=10.0).score(toy.ood)
    )
    custom = torch.randn(4, 12, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(MCM(custom).score(toy.ood), MCM().score(toy.ood))
    assert MCM.search_space == {"temperature": (0.01, 1.0, 10.0)}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"class_embeddings": torch.ones(3)},
        {"class_embeddings": [[1.0, 0.0]]},
        {"class_embeddings": torch.ones(2, 3, dtype=torch.long)},
        {"class_embeddings": torch.zeros(0, 3)},
        {"class_embeddings": torch.tensor([[1.0, 0.0], [0.0, 0.0]])},
        {"class_embeddings": torch.tensor([[1.0, math.nan]])},
    ],
)
def test_invalid_hyperparameters_raise(kwargs):
    with pytest.raises(ConfigError):
        MCM(**kwargs)


def test_data_errors(toy):
    with pytest.raises(DataError, match="dimension 12"):
        MCM(torch.ones(4, 5)).score(toy.id)
    no_head = Outputs(logits=toy.id.logits, features=toy.id.features, labels=toy.id.labels)
    with pytest.raises(DataError, match="linear head"):
        MCM().score(no_head)
