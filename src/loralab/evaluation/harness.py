"""lm-evaluation-harness as an evaluation engine: its tasks, run on a loralab model with any
adapter kind (LoRA, MoSLoRA, MoE-LoRA: the adapted model object itself is handed to lm-eval,
so adapters without a PEFT equivalent are evaluated too).

Optional: ``pip install 'loralab[harness]'``. With Hub access lm-eval's stock tasks work
(``arc_easy``, ``boolq``, ``piqa``, ...); offline, task YAMLs over local files
(``harness.include_path``).
"""

from __future__ import annotations

import importlib.util
from typing import Any

INSTALL_HINT = "pip install 'loralab[harness]' (lm-evaluation-harness)"


def harness_installed() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def run_harness(
    model,
    tokenizer,
    tasks: list[str],
    *,
    include_path: str | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on ``model``: ``{"results": {task: {metric: value}},
    "n-shot", "versions", "n-samples"}`` as lm-eval reports them (``acc,none``,
    ``acc_stderr,none``, ...). ``limit`` takes the first N documents of each task, as
    lm-eval's ``--limit``."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    manager = TaskManager(include_path=include_path)
    out = simple_evaluate(
        model=lm,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=manager,
        log_samples=False,
    )
    return {key: out.get(key) for key in ("results", "n-shot", "versions", "n-samples")}


def harness_table(results: dict[str, Any], title: str) -> str:
    """A markdown table: task, metric, value, standard error (lm-eval's own figures)."""
    lines = [f"### {title}", "", "| task | metric | value | stderr |", "|---|---|---|---|"]
    for task, metrics in (results.get("results") or {}).items():
        for key, value in metrics.items():
            name, _, selector = key.partition(",")
            if name.endswith("_stderr") or name == "alias" or not isinstance(value, int | float):
                continue
            stderr = metrics.get(f"{name}_stderr,{selector}")
            shown = "n/a" if not isinstance(stderr, int | float) else f"{stderr:.4f}"
            lines.append(f"| {task} | {name} | {value:.4f} | {shown} |")
    return "\n".join(lines) + "\n"
