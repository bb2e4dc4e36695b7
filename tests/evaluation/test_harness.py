"""loralab-eval mode=harness: lm-evaluation-harness's own evaluation of a loralab model, here
through a task YAML over a local file; and loralab's cloze `acc` / `acc_norm` equal lm-eval's
on the same questions and model."""

import json

import pytest
import yaml

from loralab.tasks import build_task
from tests.helpers import compose_config, run_cli

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (loralab[harness])")

TINY = ["model=tiny_llama", "task=demo", "task.max_examples.test=24"]


def local_task(tmp_path) -> tuple[str, int]:
    """A multiple-choice lm-eval task over the demo quiz's test questions in their cloze form
    (the context loralab's cloze mode scores after, each option's text after a space)."""
    task = build_task(compose_config(TINY).task, splits=("test",))
    rows = []
    for record in task.splits["test"]:
        context, options = task.cloze(record)
        rows.append({"context": context, "choices": options, "gold": task.gold_index(record)})
    data = tmp_path / "quiz.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    folder = tmp_path / "tasks"
    folder.mkdir()
    spec = {
        "task": "loralab_quiz",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{context}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    (folder / "loralab_quiz.yaml").write_text(yaml.safe_dump(spec))
    return str(folder), len(rows)


def evaluate(args, tmp_path, name):
    run_dir = tmp_path / name
    done = run_cli(
        "loralab.cli.evaluate",
        [*args, "precision=32-true", f"hydra.run.dir={run_dir}"],
        tmp_path,
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "eval.json").read_text()), done.stdout


def test_harness_mode_runs_a_local_task_and_loralab_cloze_equals_it(tmp_path):
    include, n = local_task(tmp_path)
    harness, printed = evaluate(
        [*TINY, "mode=harness", "harness.tasks=[loralab_quiz]", f"harness.include_path={include}"],
        tmp_path,
        "harness",
    )
    metrics = harness["harness"]["results"]["loralab_quiz"]
    assert harness["harness"]["n-samples"]["loralab_quiz"]["effective"] == n
    for name in ("acc", "acc_norm"):
        assert 0 <= metrics[f"{name},none"] <= 1 and metrics[f"{name}_stderr,none"] > 0
    assert "| loralab_quiz | acc |" in printed

    cloze, _ = evaluate([*TINY, "mode=cloze"], tmp_path, "cloze")
    overall = cloze["summary"]["overall"]
    assert overall["n"] == n
    # the same questions, model and definitions: the same picks, so the same figures
    assert overall["acc"] == pytest.approx(metrics["acc,none"], abs=1e-9)
    assert overall["acc_norm"] == pytest.approx(metrics["acc_norm,none"], abs=1e-9)


def test_harness_mode_needs_tasks(tmp_path):
    done = run_cli("loralab.cli.evaluate", [*TINY, "mode=harness"], tmp_path)
    assert done.returncode == 2 and "harness.tasks=[] must name lm-eval tasks" in done.stderr
