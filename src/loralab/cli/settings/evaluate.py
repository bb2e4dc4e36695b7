"""loralab-eval's own settings (conf/eval.yaml): which split, how it is scored, on what."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loralab.cli.settings.fields import Rule, names_list, one_of, setting, text, whole
from loralab.values import is_number

EVAL_DEVICES = ("auto", "cpu", "cuda")


def _splits():
    from loralab.tasks import SPLITS

    return SPLITS


def _modes():
    from loralab.evaluation.predict import MODES

    return (*MODES, "harness")


def _precisions():
    from loralab.cli.precision import EVAL_CHOICES

    return EVAL_CHOICES


@dataclass(frozen=True)
class HarnessSettings:
    """harness: lm-evaluation-harness's own tasks (mode=harness; pip install 'loralab[harness]')."""

    tasks: list = setting(
        names_list("[arc_easy]"), "lm-eval task names (the Hub's, or your own YAMLs')"
    )
    include_path: str | None = setting(
        text(nullable=True, what="a folder"), "a folder of task YAMLs (e.g. offline)"
    )
    limit: float | None = setting(
        Rule(
            lambda v: v is None or (is_number(v) and v > 0),
            "null or a number > 0 (lm-eval's --limit)",
        ),
        "the first N documents of each task; null = all",
    )
    num_fewshot: int | None = setting(whole(0, nullable=True), "null = each task's own default")


@dataclass(frozen=True)
class EvalSettings:
    """loralab-eval: accuracy of a saved adapter (or of the bare base model) on one split."""

    plugins: list = setting(
        Rule(lambda v: True, "a list of module names"), "your Python modules, imported first"
    )
    adapter_dir: str | None = setting(
        text(nullable=True, what="a folder"),
        "a folder written by save_adapter (a training run's adapter/); null = the base model",
    )
    split: str = setting(one_of(_splits), "the split to evaluate")
    mode: str = setting(
        one_of(_modes),
        "score: option scores from one forward pass | generate: greedy decoding + the paper's "
        "parser | cloze: each option's own text after the bare question | harness: "
        "lm-evaluation-harness's tasks (harness.tasks)",
    )
    max_new_tokens: int = setting(whole(1), "generate mode: tokens per problem")
    num_beams: int = setting(
        whole(1, note="1 = greedy"), "generate mode: 1 = greedy, > 1 = beam search"
    )
    device: str = setting(one_of(EVAL_DEVICES), "auto: the GPU where there is one | cpu | cuda")
    precision: str = setting(
        one_of(
            _precisions,
            note="use the precision the run trained with: its summary.json names it",
        ),
        "model: the checkpoint's dtype, no autocast (as lm-evaluation-harness) | auto: as "
        "trainer.precision=auto | 32-true | bf16-mixed",
    )
    run_name: str = setting(None, "the evaluation's folder name under outputs/")
    harness: Any = setting(None, "mode=harness's settings", group=HarnessSettings)

    def problems(self, prefix: str) -> list[str]:
        """The adapter folder exists, the device is here, and harness mode has what it needs."""
        import torch

        errors = []
        if self.device == "cuda" and not torch.cuda.is_available():
            errors.append(
                "device='cuda' but torch sees no CUDA device here: use device=auto or cpu"
            )
        folder = self.adapter_dir
        if isinstance(folder, str) and not (Path(folder) / "adapter_config.json").is_file():
            errors.append(
                f"adapter_dir={folder!r} holds no adapter_config.json "
                "(expected a folder written by save_adapter, e.g. a training run's adapter/)"
            )
        if self.mode == "harness":
            errors += _harness_problems(self.harness if isinstance(self.harness, dict) else {})
        return errors


def _harness_problems(harness: dict) -> list[str]:
    from loralab.evaluation.harness import INSTALL_HINT, harness_installed

    errors = []
    if not harness_installed():
        errors.append(
            f"mode=harness needs lm-evaluation-harness, not installed here: {INSTALL_HINT}"
        )
    tasks = harness.get("tasks")
    if not (isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)):
        errors.append(
            f"harness.tasks={tasks!r} must name lm-eval tasks, e.g. 'harness.tasks=[arc_easy]'"
        )
    folder = harness.get("include_path")
    if folder is not None and not Path(str(folder)).is_dir():
        errors.append(f"harness.include_path={folder!r} is not a folder (of task YAMLs)")
    return errors
