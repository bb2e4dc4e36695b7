"""Keep the adapter of the best validation pass (``checkpoint.select_by``), as the MoSLoRA
reference does with HF Trainer's ``load_best_model_at_end``: at the end of training the selected
weights replace the last ones, so the final test, ``adapter/`` and the summary are the
selected adapter's; the last adapter is kept beside it (``adapter_last/``).

Only validation passes after a training step compete (the reference's first evaluation is
after its first ``eval_steps``; the step-0 pass measures the untrained adapters). The best
weights so far travel in every checkpoint, so a resumed run selects as the uninterrupted one.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import Callback

MODES = ("min", "max")


class BestAdapter(Callback):
    def __init__(self, metric: str, mode: str = "min"):
        if mode not in MODES:
            raise ValueError(f"checkpoint.select_mode={mode!r} must be one of {list(MODES)}")
        self.metric, self.mode = metric, mode
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return f"BestAdapter[{self.metric},{self.mode}]"

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_step == 0:
            return
        logged = trainer.callback_metrics
        if self.metric not in logged:
            names = ", ".join(sorted(k for k in logged if k.startswith("val/")))
            raise ValueError(
                f"checkpoint.select_by={self.metric!r} was not logged by validation; "
                f"choose one of: {names}"
            )
        value = float(logged[self.metric])
        if math.isnan(value) or not self._better(value):
            return
        self.best_value, self.best_step = value, trainer.global_step
        self.weights = {
            name: param.detach().to("cpu", copy=True)
            for name, param in pl_module.model.named_parameters()
            if param.requires_grad
        }

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def restore_best(self, model) -> bool:
        """Load the selected weights into ``model``; False when no pass was selected."""
        if self.weights is None:
            return False
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, saved in self.weights.items():
                params[name].copy_(saved.to(params[name].device))
        return True

    def record(self, last_step: int) -> dict:
        """What summary.json says about the selection."""
        return {
            "metric": self.metric,
            "mode": self.mode,
            "selected_step": self.best_step,
            "selected_value": self.best_value,
            "last_step": last_step,
        }

    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "best_step": self.best_step, "weights": self.weights}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_value = state_dict["best_value"]
        self.best_step = state_dict["best_step"]
        self.weights = state_dict["weights"]
