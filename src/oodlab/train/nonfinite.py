"""The stop (or skip) of a training run whose loss is no longer finite.

``train.nonfinite: stop`` (the default) ends the run at the first step whose loss, or one of
its logged terms, is NaN or infinite, in one line naming the terms and the step; the epoch is
not checkpointed, so the folder keeps the last good checkpoint, and ``--resume`` with a lower
learning rate (or with ``train.nonfinite=skip``) continues from it. ``skip`` drops such steps
(no update; the schedule still advances) and counts them in the epoch's log row; an epoch whose
steps were all skipped stops the run all the same.

On the CPU every step is checked before its update. On an accelerator the check is deferred
(the flags stay on the device and are read every ``check_every`` steps and before every
checkpoint), so the loop does not synchronise per step; the step named is still the first bad
one, and nothing after it is saved. ``skip`` has to read the flag before each update, so it
synchronises once per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from oodlab.errors import TrainingDivergedError


class NonFiniteGuard:
    """Watches the loss terms of one stage; raises :class:`TrainingDivergedError` on a bad one."""

    def __init__(
        self,
        mode: Literal["stop", "skip"],
        device: torch.device,
        run_dir: Path,
        check_every: int = 32,
    ) -> None:
        self.mode, self.run_dir = mode, run_dir
        self.every = 1 if device.type == "cpu" else check_every
        self.first_bad: Tensor | None = None  # 1 + the first bad step, 0 while none
        self.bad_terms: Tensor | None = None  # the terms that were ever non-finite
        self.names: list[str] = []
        self.skipped = 0

    def observe(self, terms: dict[str, Tensor], step: int, where: str) -> bool:
        """Record the step's terms (``loss`` first); ``True`` if the step must be skipped."""
        names = list(terms)
        bad = torch.stack([~torch.isfinite(v.detach().float()).all() for v in terms.values()])
        if self.mode == "skip":
            if bool(bad.any()):
                self.skipped += 1
                return True
            return False
        if self.bad_terms is None or names != self.names:
            self.check(where)  # the terms changed: settle the old flags first
            self.names, self.bad_terms = names, torch.zeros_like(bad)
            self.first_bad = torch.zeros((), dtype=torch.long, device=bad.device)
        assert self.first_bad is not None
        hit = bad.any() & (self.first_bad == 0)
        self.first_bad = torch.where(hit, torch.full_like(self.first_bad, step + 1), self.first_bad)
        self.bad_terms = torch.where(hit, bad, self.bad_terms)
        if (step + 1) % self.every == 0:
            self.check(where)
        return False

    def check(self, where: str) -> None:
        """Raise if a step so far was bad (reads the device flags: one synchronisation)."""
        if self.first_bad is None or self.bad_terms is None or int(self.first_bad) == 0:
            return
        terms = [n for n, b in zip(self.names, self.bad_terms.tolist(), strict=True) if b]
        self._stop(
            f"loss term(s) {', '.join(terms)} became NaN or infinite at step "
            f"{int(self.first_bad) - 1} ({where})"
        )

    def end_of_epoch(self, model: nn.Module, steps: int, where: str) -> None:
        """Before a checkpoint: the deferred check, all steps skipped, non-finite weights."""
        self.check(where)
        if self.mode == "skip" and steps and self.skipped >= steps:
            self._stop(f"every step of {where} had a non-finite loss and was skipped")
        tensors = [p.detach().isfinite().all() for p in model.parameters() if p.numel()]
        if tensors and not bool(torch.stack(tensors).all()):
            self._stop(f"the weights became NaN or infinite during {where}")

    def _stop(self, what: str) -> None:
        saved = (self.run_dir / "checkpoint.pt").is_file()
        kept = (
            f"the last good checkpoint is kept in {self.run_dir / 'checkpoint.pt'}"
            if saved
            else "no checkpoint had been written yet"
        )
        raise TrainingDivergedError(
            f"training diverged: {what}; {kept}. Lower train.lr (resume with --resume), or set "
            "train.nonfinite=skip to skip such steps"
        )
