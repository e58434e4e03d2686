"""A running average of a model's weights over the optimizer steps (Polyak, as in BYOL's target).

The weights of the last step carry the noise of its last batches; an exponential moving
average over the last few hundred steps sits nearer the middle of where training
wandered and often embeds unseen data better.  Training itself goes on with the live
weights; the average is what a phase hands on (to its saved model and to the next phase).
Batch-norm statistics are averaged like the weights; integer buffers (the batch count)
are copied.
"""

from __future__ import annotations

import torch


class WeightAverage:
    """Exponential moving average of ``model``'s state: after each step,
    ``average = decay x average + (1 - decay) x weights``."""

    def __init__(self, model: torch.nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None):
        if not 0 < decay < 1:
            raise ValueError("the decay of a weight average lies between 0 and 1")
        self.model, self.decay = model, decay
        current = model.state_dict()
        self.state = {name: (state[name] if state is not None else value).detach().clone().to(value.device)
                      for name, value in current.items()}

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (after an optimizer step)."""
        for name, value in self.model.state_dict().items():
            average = self.state[name]
            if average.is_floating_point():
                average.lerp_(value.detach(), 1.0 - self.decay)
            else:
                average.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.cpu() for name, value in self.state.items()}

    def apply(self) -> None:
        """Give the model the averaged weights."""
        self.model.load_state_dict(self.state)
