"""What a finished run reports: its summary (``summary.json`` and the printed table), the
per-question record of each test pass, and the value a sweeper optimises, all read back from
the run directory (metrics.csv, predictions/)."""

from __future__ import annotations

from pathlib import Path

from loralab.evaluation.option_metrics import METRICS
from loralab.runs.loggers import before_and_after, before_and_after_by_task, metrics_path

PREDICTIONS_DIR = "predictions"


def record_test(trainer, module, task, datamodule, run_dir: Path) -> None:
    """``predictions/test_step<N>.jsonl``: the test pass just run, one line per question (its
    picks under each metric and, where options are scored whole, each option's scores), so
    any table can be recomputed and two runs compared question by question. Every process
    evaluates the whole test split; the first writes it."""
    from loralab.evaluation.predict import score_results
    from loralab.evaluation.predictions_file import write_predictions

    if not trainer.is_global_zero:
        return
    records = datamodule.records["test"]
    by_index = {record["index"]: record for record in module.test_records}
    rows = [by_index[i] for i in range(len(records))]
    results = score_results(
        task, records, [row["picks"] for row in rows], [row["options"] for row in rows]
    )
    folder = run_dir / PREDICTIONS_DIR
    folder.mkdir(exist_ok=True)
    write_predictions(folder / f"test_step{trainer.global_step}.jsonl", results)


def run_summary(run_name: str, run_dir: Path) -> dict:
    """Test accuracy before and after (per task too on a mixed test split) from metrics.csv."""
    before, after = before_and_after(metrics_path(run_dir), "test/acc")
    by_task = before_and_after_by_task(metrics_path(run_dir))
    summary = {
        "run_name": run_name,
        "test_acc_before": before,
        "test_acc_after": after,
        "run_dir": str(run_dir),
        "metrics_csv": str(metrics_path(run_dir)),
    }
    # each metric the run logged, with its standard error over the test questions
    test = {}
    for metric in METRICS:
        for name in (metric, f"{metric}_stderr"):
            first, last = before_and_after(metrics_path(run_dir), f"test/{name}")
            if last is not None:
                test[name] = {"before": None if before is None else first, "after": last}
    summary["test_metrics"] = test
    folder = run_dir / PREDICTIONS_DIR
    summary["predictions"] = (
        sorted(p.name for p in folder.glob("*.jsonl")) if folder.is_dir() else []
    )
    if by_task:  # a mixed test split: each task's accuracy and their plain mean (the papers')
        summary["test_acc_by_task"] = {
            name: {"before": None if before is None else first, "after": last}
            for name, (first, last) in by_task.items()
        }
        summary["test_task_mean_after"] = sum(last for _, last in by_task.values()) / len(by_task)
        summary["test_task_mean_before"] = (
            None if before is None else sum(first for first, _ in by_task.values()) / len(by_task)
        )
    return summary


def format_summary(summary: dict) -> str:
    """The short table printed at the end of a run."""
    rows = [
        ("test accuracy before", _metric_cell(summary, "acc", "before")),
        ("test accuracy after", _metric_cell(summary, "acc", "after")),
        *[
            (
                f"  {metric} before -> after",
                " -> ".join(_metric_cell(summary, metric, w) for w in ("before", "after")),
            )
            for metric in ("acc_norm", "acc_per_token")
            if metric in summary.get("test_metrics", {})
        ],
        *_by_task_rows(summary),
        ("steps", str(summary["steps"])),
        *_dropped_rows(summary),
        ("precision", summary["precision"]),
        ("wall time", f"{summary['wall_time_s']:.0f} s"),
        ("trainable parameters", f"{summary['trainable_parameters']:,}"),
        ("run directory", summary["run_dir"]),
        ("metrics", summary["metrics_csv"]),
        ("adapter", summary["adapter_dir"]),
        ("curves", summary["curves_png"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k.ljust(width)}  {v}" for k, v in rows]
    rule = "-" * (width + 4 + max(len(v) for _, v in rows))
    return "\n".join([rule, f"  loralab run: {summary['run_name']}", rule, *lines, rule])


def _metric_cell(summary: dict, metric: str, when: str) -> str:
    """``59.0% ± 4.9``: a test metric before or after training, with its standard error."""
    logged = summary.get("test_metrics", {})
    value = logged.get(metric, {}).get(when)
    if value is None and metric == "acc":
        value = summary[f"test_acc_{when}"]
    if value is None:
        return "n/a"
    stderr = logged.get(f"{metric}_stderr", {}).get(when)
    return f"{100 * value:.1f}%" + ("" if stderr is None else f" ± {100 * stderr:.1f}")


def _dropped_rows(summary: dict) -> list[tuple[str, str]]:
    dropped = summary.get("examples_dropped")
    if not dropped:
        return []
    counts = ", ".join(f"{split} {n}" for split, n in dropped.items())
    return [("over-long dropped", f"{counts} (data.overflow=drop)")]


def _by_task_rows(summary: dict) -> list[tuple[str, str]]:
    """Per-task test accuracy, before -> after, and their mean (a mixed test split only)."""
    by_task = summary.get("test_acc_by_task")
    if not by_task:
        return []

    def change(before, after) -> str:
        return ("n/a" if before is None else f"{100 * before:.1f}%") + f" -> {100 * after:.1f}%"

    rows = [(f"  {name}", change(v["before"], v["after"])) for name, v in by_task.items()]
    mean = change(summary["test_task_mean_before"], summary["test_task_mean_after"])
    return [*rows, (f"  mean of {len(by_task)} tasks", mean)]


def objective(summary: dict, metric: str) -> float:
    """The last logged value of `metric` (a metrics.csv column), what a sweeper optimises."""
    _, last = before_and_after(Path(summary["metrics_csv"]), metric)
    if last is None:
        raise ValueError(
            f"optimized_metric={metric!r} was never logged in {summary['metrics_csv']}: "
            "name a logged column such as val/acc or val/loss"
        )
    return float(last)
