"""KL matching against scipy's KL divergence, hand-worked values and per-sample template loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from oodlab.errors import ConfigError, DataError, NotFittedError
from oodlab.scores import SCORES
from oodlab.scores.kl_matching import KLMatching, kl_matching
from oodlab.types import Outputs


def outputs(logits, labels=None) -> Outputs:
    logits = torch.as_tensor(logits, dtype=torch.float32)
    if labels is None:
        labels = torch.full((len(logits),), -1)
    return Outputs(
        logits=logits, features=torch.zeros(len(logits), 1), labels=torch.as_tensor(labels)
    )


def loop_templates(logits, assigned, num_classes):
    """Mean softmax per class by an explicit loop over samples; one-hot for empty classes."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
    templates = []
    for c in range(num_classes):
        rows = [probs[i] for i in range(len(probs)) if int(assigned[i]) == c]
        templates.append(np.mean(rows, axis=0) if rows else np.eye(num_classes)[c])
    return np.array(templates)


def scipy_scores(logits, templates):
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
    return [min(entropy(p, d) for d in templates) for p in probs]


def random_logits(n, c, seed, scale=2.0):
    return scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def test_hand_worked_two_class_example():
    # p = (1/2, 1/2); d_0 = (0.8, 0.2), d_1 = (0.2, 0.8):
    # KL = ½ log(0.5/0.8) + ½ log(0.5/0.2) = ½ log(1.5625) = log(1.25) for both templates.
    templates = torch.tensor([[0.8, 0.2], [0.2, 0.8]])
    assert kl_matching(torch.zeros(1, 2), templates).item() == pytest.approx(math.log(1.25))
    # p = (0.8, 0.2) matches d_0 exactly: KL = 0.
    logits = torch.tensor([[math.log(0.8), math.log(0.2)]])
    assert kl_matching(logits, templates).item() == pytest.approx(0.0, abs=1e-7)


def test_function_against_scipy_entropy():
    logits = random_logits(9, 4, seed=0)
    templates = torch.softmax(random_logits(4, 4, seed=1), 1)
    expected = scipy_scores(logits, templates.double().numpy())
    assert kl_matching(logits, templates).tolist() == pytest.approx(expected, rel=1e-5)


def test_zero_probability_terms_are_dropped():
    # p = (1, 0) (a −inf logit): KL(p ‖ (½, ½)) = log 2, and KL(p ‖ (1, 0)) = 0, not NaN.
    logits = torch.tensor([[0.0, -math.inf]])
    assert kl_matching(logits, torch.tensor([[0.5, 0.5]])).item() == pytest.approx(math.log(2))
    assert kl_matching(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("template_labels", ["predicted", "true"])
def test_fitted_templates_and_scores_against_loops_and_scipy(template_labels):
    train_logits, test_logits = random_logits(60, 3, seed=2), random_logits(11, 3, seed=3)
    labels = torch.arange(60) % 3  # mostly different from the predictions
    score = KLMatching(template_labels).fit(outputs(train_logits, labels))
    assigned = train_logits.argmax(1) if template_labels == "predicted" else labels
    templates = loop_templates(train_logits, assigned, 3)
    np.testing.assert_allclose(score.templates_.numpy(), templates, rtol=1e-12)
    expected = scipy_scores(test_logits, templates)
    assert score.score(outputs(test_logits)).tolist() == pytest.approx(expected, rel=1e-5)


def test_never_predicted_class_one_hot_template_floor_and_openood_inf():
    # Class 2 is never predicted: its template is e_2. "floor" floors every template entry at
    # 1e-12, so KL(p ‖ e_2) = Σ_k p_k log(p_k / max(e_2k, 1e-12)) is finite — and smallest
    # for the first test sample, confidently predicted as class 2. "inf" (OpenOOD, scipy's
    # entropy) gives e_2 the exact +∞, so that sample is scored by the other templates.
    from scipy.stats import entropy

    train = torch.tensor([[3.0, 0.0, -1.0], [0.0, 2.0, 1.0], [2.0, 1.0, 0.0]])
    templates = loop_templates(train, train.argmax(1), 3)
    np.testing.assert_array_equal(templates[2], [0.0, 0.0, 1.0])
    test = torch.tensor([[-5.0, -5.0, 9.0], [1.0, 0.0, 0.0]])
    probs = torch.softmax(test.double(), 1).numpy()

    floor = KLMatching(zero_template="floor").fit(outputs(train))
    np.testing.assert_allclose(floor.templates_.numpy(), templates)
    floored = np.maximum(templates, 1e-12)
    expected_floor = [min(np.sum(p * np.log(p / d)) for d in floored) for p in probs]
    got_floor = floor.score(outputs(test))
    assert torch.isfinite(got_floor).all()
    assert got_floor.tolist() == pytest.approx(expected_floor, rel=1e-6)

    openood = KLMatching().fit(outputs(train))
    assert openood.zero_template == "inf"
    expected_inf = [min(entropy(p, d) for d in templates) for p in probs]  # scipy: inf at e_2
    assert np.isinf(entropy(probs[0], templates[2]))
    got_inf = openood.score(outputs(test))
    assert got_inf.tolist() == pytest.approx(expected_inf, rel=1e-6)
    assert got_inf[0] > 10 * got_floor[0]  # the floored e_2 matched the first sample


def test_sign_near_template_scores_lower_than_flat():
    train = torch.tensor([[6.0, 0.0], [0.0, 6.0]] * 5)
    score = KLMatching().fit(outputs(train))
    peaked, flat = score.score(outputs([[6.0, 0.0], [0.0, 0.0]])).tolist()
    assert peaked == pytest.approx(0.0, abs=1e-6)
    assert flat > peaked


def test_template_labels_changes_the_scores():
    train_logits, labels = random_logits(30, 3, seed=4), torch.arange(30) % 3
    test = outputs(random_logits(8, 3, seed=5))
    predicted = KLMatching("predicted").fit(outputs(train_logits, labels)).score(test)
    true = KLMatching("true").fit(outputs(train_logits, labels)).score(test)
    assert not torch.equal(predicted, true)


def test_errors():
    with pytest.raises(ConfigError, match="template_labels"):
        KLMatching("guessed")  # type: ignore[arg-type]
    with pytest.raises(NotFittedError, match="fit"):
        KLMatching().score(outputs([[1.0, 0.0]]))
    with pytest.raises(DataError, match="labels in"):
        KLMatching("true").fit(outputs([[1.0, 0.0], [0.0, 1.0]], [0, -1]))
    with pytest.raises(DataError, match="zero samples"):
        KLMatching().fit(outputs(torch.zeros(0, 2)))
    fitted = KLMatching().fit(outputs([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(DataError, match="templates must be"):
        fitted.score(outputs([[1.0, 0.0, 0.0]]))
    assert SCORES.get("kl_matching").requires_fit
