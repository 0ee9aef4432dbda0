"""The training progress bar: Lightning's rich bar, with an epoch count that makes sense for a step budget."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, but a run bounded by steps (trainer.max_epochs=-1, as the recipes)
    reads "Epoch 3 · 3000 steps" where Lightning writes "Epoch 3/-2" (it prints max_epochs - 1)."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
        if max_epochs is None or max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        description = f"Epoch {current_epoch}" + (f" · {max_steps} steps" if max_steps and max_steps > 0 else "")
        # as Lightning's: padded to the validation bar's label, so the two labels do not flicker
        return f"{description:{len(self.validation_description)}}"
