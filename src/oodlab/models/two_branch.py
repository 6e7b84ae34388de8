"""Two branches sharing every weight but BatchNorm and the classifier: PASCL's stage-1 (OOD)
branch and its auxiliary-branch fine-tuned (classification) branch."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from oodlab.types import linear_head


def _own_modules(model: nn.Module) -> set[int]:
    """Ids of the modules a branch keeps for itself: BatchNorm layers and the classifier."""
    own = {id(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    head = linear_head(model)
    if head is not None:
        own.add(id(head))
    return own


class TwoBranch(nn.Module):
    """``ood`` (scores OOD) and ``cls`` (classifies), one set of convolution weights.

    ``features``/``head``/``extra_outputs`` are the OOD branch's, so every score and cached
    feature comes from it; ``input_outputs(x)`` adds ``class_logits`` of the classification
    branch, which evaluation uses for ID accuracy. While ``use_cls`` is set (PASCL's ABF
    stage) ``features``/``head`` run the classification branch instead, so the one training
    loop trains it. The shared weights are the same ``Parameter`` objects in both branches
    (saved once by ``torch.save``); BatchNorm and the final linear layer are copies.

    Reference: Wang et al. (PASCL), ICML 2022, arXiv:2207.01160, Sec. 4.3 (auxiliary branch
    fine-tuning); long_tailed.md §1.5 — "a model holding two BN/FC sets".
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.ood = model
        self.cls = copy.deepcopy(model)
        own = _own_modules(self.cls)
        for shared, mine in zip(self.ood.modules(), self.cls.modules(), strict=True):
            if id(mine) in own:
                continue
            for name, param in shared.named_parameters(recurse=False):
                mine.register_parameter(name, param)
        self.use_cls = False
        self.feature_dim = getattr(model, "feature_dim", None)

    @property
    def _active(self) -> nn.Module:
        return self.cls if self.use_cls else self.ood

    def classification_parameters(self) -> list[nn.Parameter]:
        """The parameters only the classification branch has (its BatchNorm and classifier)."""
        own = _own_modules(self.cls)
        return [p for m in self.cls.modules() if id(m) in own for p in m.parameters(False)]

    def copy_ood_to_cls(self) -> None:
        """Start the classification branch from the OOD branch's BatchNorm and classifier."""
        self.cls.load_state_dict(self.ood.state_dict())

    def features(self, x: Tensor) -> Tensor:
        return self._active.features(x)  # type: ignore[operator]

    def head(self, z: Tensor) -> Tensor:
        return self._active.head(z)  # type: ignore[operator]

    def extra_outputs(self, z: Tensor, names: Sequence[str] | None = None) -> dict[str, Tensor]:
        extra = getattr(self._active, "extra_outputs", None)
        return extra(z, names) if callable(extra) else {}

    def input_outputs(self, x: Tensor) -> dict[str, Tensor]:
        """``class_logits``: the classification branch's logits (its argmax is the class)."""
        return {"class_logits": self.cls(x)}

    def head_input(self, z: Tensor) -> Tensor | None:
        getter = getattr(self._active, "head_input", None)
        return getter(z) if callable(getter) else None

    def linear_head(self) -> nn.Linear | None:
        return linear_head(self._active)

    def intermediate_features(self, x: Tensor) -> list[Tensor]:
        return self.ood.intermediate_features(x)  # type: ignore[operator]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
