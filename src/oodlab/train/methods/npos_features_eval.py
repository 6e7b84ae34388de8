"""``oodlab eval`` on a run of the feature-space NPOS pipeline (``method.name: npos_features``).

Such a run has no image model: ``model.pt`` holds the fine-tuned tail of the embedding
extractor. :func:`load_feature_run` rebuilds it as an oodlab classifier over embeddings —
``features(x)`` the L2-normalised tail output, ``head`` a bias-free linear layer whose rows are
the L2-normalised class (text) embeddings, so the logits are the cosine similarities the
pipeline classifies with — and wraps the run's embedding files as datasets. Then the whole
score zoo applies, MCM included (with the rows of ``W`` as class embeddings it is the
pipeline's own MCM; its temperature is the score's, 1 by default as the pipeline's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from oodlab.config import RunConfig
from oodlab.data.benchmarks import Benchmark
from oodlab.errors import ConfigError
from oodlab.io import safe_torch_load
from oodlab.scores._features import l2_normalize
from oodlab.synthesis.feature_data import FeatureTail, load_features, load_labels
from oodlab.train.methods.npos_features import feature_options


class EmbeddingClassifier(nn.Module):
    """Cosine classifier on fine-tuned embeddings: ``head(features(x))`` are the cosine
    similarities between ``tail(x)`` and the class embeddings."""

    def __init__(self, tail: FeatureTail, class_embeddings: Tensor) -> None:
        super().__init__()
        self.tail = tail
        self.classifier = nn.Linear(class_embeddings.shape[1], len(class_embeddings), bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(l2_normalize(class_embeddings))

    def features(self, x: Tensor) -> Tensor:
        return l2_normalize(self.tail(x))

    def head(self, z: Tensor) -> Tensor:
        return self.classifier(z)

    def linear_head(self) -> nn.Linear:
        return self.classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def load_feature_run(run_dir: Path, config: RunConfig) -> tuple[EmbeddingClassifier, Benchmark]:
    """The run's classifier and its embedding files as a benchmark (train = the training
    embeddings; test = the test embeddings; OOD = each ``ood_features`` file, all far)."""
    opts = feature_options(config)
    text = load_features(opts.class_embeddings, "class embeddings")
    train_x = load_features(opts.train_features, "training features")
    dim = train_x.shape[1]
    train_y = load_labels(opts.train_labels, "training labels", len(train_x), len(text))
    if opts.test_features is None or opts.test_labels is None:
        raise ConfigError(
            "evaluating an npos_features run needs method.options.test_features and test_labels"
        )
    test_x = load_features(opts.test_features, "test features", dim)
    test_y = load_labels(opts.test_labels, "test labels", len(test_x), len(text))
    tail = FeatureTail(dim, text.shape[1], opts.tail_blocks, opts.tail_hidden)
    tail.load_state_dict(safe_torch_load(run_dir / "model.pt")["tail"])
    model = EmbeddingClassifier(tail, text).eval()
    ood: dict[str, Dataset[Any]] = {
        name: TensorDataset(x := load_features(path, f"OOD set {name!r}", dim),
                            torch.full((len(x),), -1))
        for name, path in sorted(opts.ood_features.items())
    }  # fmt: skip
    counts = torch.bincount(train_y, minlength=len(text)).tolist()
    benchmark = Benchmark(
        name="npos_features",
        num_classes=len(text),
        image_shape=(dim, 1, 1),  # an embedding of D values, not an image
        train=TensorDataset(train_x, train_y),
        test=TensorDataset(test_x, test_y),
        ood=ood,
        far=tuple(ood),
        class_counts=counts,
        info={"source": f"embedding files of {run_dir}"},
    )
    return model, benchmark
