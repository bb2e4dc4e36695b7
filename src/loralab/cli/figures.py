"""``loralab-figures RUN_DIR ...``: the papers' curves from logged runs, averaged over seeds.

Reads each run's ``metrics.csv`` (or, when a run has none, its offline W&B run), groups runs
that differ only in the seed (the ``-s<seed>`` suffix of the run name), and draws two
figures, each as PNG and PDF: ``runs`` (Figure 2's layout: training loss, eval loss and
accuracy over steps) and ``train_loss`` (Figure 3's: training loss, one panel per group,
i.e. per optimizer in an optimizer grid, the other groups in grey). Each group's mean is a line, its spread (min to max over seeds) a
band. Every figure is titled with the task, answer form, model, steps and test size.

From the runs' per-question records (`runs/records.py`) it writes ``questions.csv`` (each
run's outcome on each test question) and ``runs.csv`` (one row per run: variant, seed, steps, answer form, test size, acc/acc_norm/acc_per_token before and after
with their standard errors, generate-mode accuracy, losses, wall time, device, commit) and
``claims.md`` (each of the papers' comparisons this grid holds, paired on the same questions,
with its 95 % interval and verdict: `runs/claims.py`), drawn as ``claims.png``
(`runs/claims_figure.py`). ``accuracy.md`` gives each group's
accuracy, mean ± sample standard deviation over seeds with the 95 % interval over seeds and
questions, then what the curves hold (generate-mode accuracy, losses); for runs on a test split
that mixes tasks (the commonsense mix) ``per_task.md``: each task's test accuracy with its
interval and each claim's paired effect on that task (`runs/per_task.py`). Each run draws its own ``curves.png`` (`runs/curves.py`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (  # runs.png of a group of runs; a panel is drawn where a run logged its column
    ("train/loss", "training loss"),
    ("val/loss", "eval loss"),
    ("test/gen_acc", "accuracy (generate mode, test)"),  # the paper's Figure 2 accuracy
    ("val/acc", "accuracy (score mode, validation)"),
    ("train/decision_loss", "decision-token loss (training)"),
    ("val/decision_loss", "decision-token loss (eval)"),
)
SMOOTHED = ("train/loss", "train/decision_loss")  # one step's batch is noisy
SEED_SUFFIX = re.compile(r"-s\d+$")
TAIL_STEPS = 20


def load_run(run_dir: Path) -> tuple[str, pd.DataFrame, dict]:
    """(run name, metrics by step, summary) from a loralab run directory; ValueError naming
    the file that is not what a loralab run writes."""
    summary_file = run_dir / "summary.json"
    summary = _read_json(summary_file, "a run's summary.json") if summary_file.is_file() else {}
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        try:
            frame = pd.read_csv(metrics)
        except (ValueError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
            raise ValueError(f"{metrics}: not a readable CSV file ({err})") from None
        if not {"step", "train/loss"} <= set(frame.columns):
            raise ValueError(
                f"{metrics}: not a loralab metrics file (it has the columns "
                f"{', '.join(map(str, frame.columns))}; a run logs step, train/loss, ...)"
            )
    else:
        from loralab.runs.wandb_offline import find_run_file, read_history

        try:
            rows = read_history(find_run_file(run_dir))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{run_dir} has no metrics.csv and no offline W&B run (is it a loralab run?)"
            ) from None
        frame = pd.DataFrame(rows).rename(columns={"trainer/global_step": "step"})
    return summary.get("run_name", run_dir.name), frame, summary


def group_by_seed(runs) -> dict[str, list]:
    """Runs that differ only in the seed, by run name without its `-s<seed>`. Runs sharing one
    full name (same seed: e.g. trials of a learning-rate search) are different configurations,
    not seeds of one: each becomes its own group, labelled with its run directory."""
    counts = Counter(name for name, _, _ in runs)
    groups: dict[str, list] = {}
    for index, run in enumerate(runs):
        name, _, summary = run
        key = SEED_SUFFIX.sub("", name)
        if counts[name] > 1:
            key = f"{key} [{Path(summary.get('run_dir', f'run {index}')).name}]"
        groups.setdefault(key, []).append(run)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        print(
            f"loralab-figures: {', '.join(repeated)}: several runs with one name and seed are "
            "drawn apart (labelled by run directory), not as seeds of one group",
            file=sys.stderr,
        )
    return groups


def per_step(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` by step, one value per step (the last one logged at it)."""
    return frame.dropna(subset=[column]).groupby("step")[column].last()


def curve(frames: list[pd.DataFrame], column: str, smooth: int = 1) -> pd.DataFrame:
    """Per step: mean, min and max of ``column`` over the frames that logged it, each run first
    smoothed by a trailing mean over ``smooth`` logged points."""
    series = [per_step(f, column).rolling(smooth, 1).mean() for f in frames if column in f]
    table = pd.concat(series, axis=1)
    return pd.DataFrame(
        {"mean": table.mean(axis=1), "min": table.min(axis=1), "max": table.max(axis=1)}
    )


def starting_at(frame: pd.DataFrame, column: str, untrained: float | None) -> pd.DataFrame:
    """``frame`` with ``untrained`` as ``column``'s value at step 0 where the run logged none
    there: a grid that skips the untrained model's evaluation (the same for every run) still
    draws each curve from where training started, as the paper's Figure 2 does."""
    if untrained is None or 0 in per_step(frame, column).index:
        return frame
    return pd.concat([frame, pd.DataFrame({"step": [0], column: [untrained]})], ignore_index=True)


def _plot_group(ax, stats: pd.DataFrame, n: int, label: str, **style) -> None:
    ax.plot(stats.index, stats["mean"], "-" if len(stats) > 20 else "o-", label=label, **style)
    if n > 1:
        ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2, **style)


def _loss_label(smooth: int) -> str:
    return "training loss" + (f" (mean of last {smooth} steps)" if smooth > 1 else "")


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    fig.tight_layout()
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def figure2_panels(groups: dict[str, list]) -> list[tuple[str, str]]:
    """The `PANELS` some run of ``groups`` logged: the paper's accuracy panel is generate-mode
    test accuracy (runs with evaluation.generate_every), score-mode validation accuracy next."""
    return [p for p in PANELS if any(p[0] in f for runs in groups.values() for _, f, _ in runs)]


def draw(
    groups: dict[str, list],
    out_dir: Path,
    smooth: int = 1,
    title: str = "",
    baseline: dict[str, float] | None = None,
) -> list[Path]:
    """Figure 2's layout: training loss (smoothed), eval loss and accuracy over steps, then
    the loss of the token that decides the answer, in training and evaluation (the training
    loss is mostly the answer format, learnt within a few steps). A generate-mode `baseline`
    (the untrained model's accuracy) is each generate-accuracy curve's step 0 where the run
    did not measure it."""
    panels = figure2_panels(groups)
    untrained = (baseline or {}).get("generate")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        for name, runs in groups.items():
            frames = [frame for _, frame, _ in runs if column in frame]
            if column == "test/gen_acc":
                frames = [starting_at(frame, column, untrained) for frame in frames]
            if frames:
                window = smooth if column in SMOOTHED else 1
                stats = curve(frames, column, window)
                _plot_group(ax, stats, len(frames), f"{name} (n={len(frames)})")
        ax.set(xlabel="step", ylabel=_loss_label(smooth) if column == "train/loss" else label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out_dir, "runs")


def draw_train_loss(
    groups: dict[str, list], out_dir: Path, smooth: int = 1, title: str = ""
) -> list[Path]:
    """Figure 3's layout: training loss, one panel per group, the other groups in grey."""
    curves = {
        name: (curve(frames, "train/loss", smooth), len(frames))
        for name, runs in groups.items()
        if (frames := [frame for _, frame, _ in runs if "train/loss" in frame])
    }
    fig, axes = plt.subplots(
        1, max(1, len(curves)), figsize=(4 * max(1, len(curves)), 3.6), sharey=True, squeeze=False
    )
    for ax, (name, (stats, n)) in zip(axes[0], curves.items(), strict=False):  # none: 1 empty
        for other, (other_stats, _) in curves.items():
            if other != name:
                ax.plot(other_stats.index, other_stats["mean"], color="0.75", linewidth=0.8)
        _plot_group(ax, stats, n, f"n={n}", color="C0")
        ax.set(title=name, xlabel="step", yscale="log")  # log: plateaus stay distinguishable
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(_loss_label(smooth))
    fig.suptitle(title)
    return _save(fig, out_dir, "train_loss")


def final_accuracy(frame: pd.DataFrame, summary: dict) -> tuple[float | None, float | None]:
    tests = frame["test/acc"].dropna().tolist() if "test/acc" in frame else []
    before = summary.get("test_acc_before", tests[0] if len(tests) > 1 else None)
    return before, summary.get("test_acc_after", tests[-1] if tests else None)


def generate_before(frame: pd.DataFrame, untrained: float | None = None) -> float | None:
    """The step-0 generate-mode accuracy, when the run measured it (generate_at_start), else
    ``untrained`` (a --baseline's, the same model)."""
    if "test/gen_acc" not in frame:
        return untrained
    rows = frame[["step", "test/gen_acc"]].dropna()
    measured = len(rows) > 1 and rows["step"].iloc[0] == 0
    return float(rows["test/gen_acc"].iloc[0]) if measured else untrained


def _read_json(file: Path, what: str) -> dict:
    """The JSON object in `file`; ValueError naming the file when it holds anything else."""
    try:
        result = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: not readable as {what} ({err})") from None
    if not isinstance(result, dict):
        raise ValueError(f"{file}: holds a JSON {type(result).__name__}, not {what}")
    return result


def _eval_json(file: Path, argument: str) -> dict:
    """A loralab-eval ``eval.json`` with its config; ValueError naming the argument and the file
    when it is not one."""
    try:
        result = _read_json(file, "a loralab-eval eval.json")
    except ValueError as err:
        raise ValueError(f"{argument}: {err}") from None
    config = result.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("mode"), str):
        raise ValueError(f"{argument}: {file} has no config.mode (not a loralab-eval eval.json)")
    return result


def _accuracy(result: dict, file: Path, argument: str) -> float:
    """The overall accuracy of a loralab-eval result (``acc``, what training logs as its
    accuracy); ValueError naming the file if it has none."""
    summary = result.get("summary")
    overall = summary.get("overall") if isinstance(summary, dict) else None
    accuracy = None
    if isinstance(overall, dict):
        accuracy = overall.get("acc", overall.get("accuracy"))
    if not isinstance(accuracy, int | float) or isinstance(accuracy, bool):
        raise ValueError(
            f"{argument}: {file} has no summary.overall.accuracy (not a loralab-eval eval.json)"
        )
    return accuracy


def load_baseline(eval_dirs: list[Path]) -> dict[str, float]:
    """{mode: accuracy} of the untrained model from loralab-eval run folders (eval.json without
    an adapter): the "before" of runs that skip measuring it (evaluation.before_training=false,
    generate_at_start=false), since it is the same for every run of a grid."""
    baseline = {}
    for folder in eval_dirs:
        file = Path(folder) / "eval.json"
        if not file.is_file():
            raise FileNotFoundError(
                f"--baseline {folder}: no eval.json (a loralab-eval run folder)"
            )
        argument = f"--baseline {folder}"
        result = _eval_json(file, argument)
        config = result["config"]
        if config.get("adapter_dir"):
            raise ValueError(
                f"{argument}: evaluates adapter {config['adapter_dir']}; "
                "the baseline is the untrained model (loralab-eval without adapter_dir)"
            )
        baseline[config["mode"]] = _accuracy(result, file, argument)
    return baseline


def load_run_evaluations(run_dir: Path, names: list[str]) -> tuple[dict[str, float], list[str]]:
    """{mode: accuracy} from loralab-eval folders inside a run directory (``<run>/<name>``),
    each on that run's adapter after training: the "after" of a measure the run did not log
    (generate mode in a grid run with evaluation.generate_every=0, or the per-question
    record of a run made before runs kept one). A run that wrote its own per-question test
    record may lack the folder, so newer runs mix with older ones in one table; returns the
    accuracies and the names it lacked for that reason."""
    from loralab.runs.records import has_test_record

    after, skipped = {}, []
    for name in names:
        file = run_dir / name / "eval.json"
        if not file.is_file():
            if has_test_record(run_dir):  # its own record is its score-mode "after"
                skipped.append(name)
                continue
            raise FileNotFoundError(
                f"--run-eval {name}: {run_dir} has no {name}/eval.json (run loralab-eval "
                f"adapter_dir={run_dir / 'adapter'} hydra.run.dir={run_dir / name})"
            )
        argument = f"--run-eval {name}"
        result = _eval_json(file, argument)
        adapter = result["config"].get("adapter_dir")
        if not adapter or Path(adapter).parent.name != run_dir.name:
            raise ValueError(f"{argument}: {file} evaluates adapter {adapter}, not {run_dir}'s own")
        after[result["config"]["mode"]] = _accuracy(result, file, argument)
    return after, skipped


def _mean_std(values: list[float | None], scale: float, digits: int) -> str:
    """Mean ± the sample standard deviation over seeds (the mean alone for one seed)."""
    known = pd.Series([scale * v for v in values if v is not None], dtype=float)
    if known.empty:
        return "n/a"
    if len(known) == 1:
        return f"{known.iloc[0]:.{digits}f}"
    return f"{known.mean():.{digits}f} ± {known.std(ddof=1):.{digits}f}"


def final_train_loss(frame: pd.DataFrame, last: int = TAIL_STEPS) -> float | None:
    """Mean training loss over the last ``last`` logged steps (one step's batch is noisy)."""
    if "train/loss" not in frame:
        return None
    losses = per_step(frame, "train/loss")
    return float(losses.tail(last).mean()) if len(losses) else None


def last_value(frame: pd.DataFrame, column: str) -> float | None:
    values = frame[column].dropna() if column in frame else pd.Series(dtype=float)
    return float(values.iloc[-1]) if len(values) else None


def accuracy_table(
    groups: dict[str, list], baseline: dict[str, float] | None = None, score: bool = True
) -> str:
    """Per group, mean ± sample std over seeds, from the logged curves: score-mode test
    accuracy (%) before and after training and its gain (unless ``score`` is off: the
    per-question records give them), generate-mode test accuracy (%) before and at the end (the
    paper's measure; n/a unless evaluation.generate_every was set or a --run-eval measured
    it), the last validation decision-token loss and the final training loss. A run that did
    not measure a "before" takes it from `baseline` ({mode: accuracy} of the untrained model),
    if given; an "after" it did not log, from its summary's ``evaluated`` ({mode: accuracy},
    `load_run_evaluations`)."""
    baseline = baseline or {}
    first = ["test acc before", "test acc after", "gain"] if score else []
    header = [
        "run",
        "seeds",
        *first,
        "generate acc before",
        "generate acc after",
        "val decision loss",
        f"train loss (last {TAIL_STEPS} steps)",
        "steps",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, runs in groups.items():
        pairs = [final_accuracy(frame, summary) for _, frame, summary in runs]
        evaluated = [summary.get("evaluated", {}) for _, _, summary in runs]
        pairs = [
            (baseline.get("score") if b is None else b, e.get("score") if a is None else a)
            for (b, a), e in zip(pairs, evaluated, strict=True)
        ]
        before, after = (_mean_std(list(values), 100, 1) for values in zip(*pairs, strict=True))
        gains = [None if None in pair else pair[1] - pair[0] for pair in pairs]
        started = [generate_before(frame, baseline.get("generate")) for _, frame, _ in runs]
        generated = [last_value(frame, "test/gen_acc") for _, frame, _ in runs]
        generated = [
            e.get("generate") if g is None else g for g, e in zip(generated, evaluated, strict=True)
        ]
        decision = [last_value(frame, "val/decision_loss") for _, frame, _ in runs]
        cells = [
            *([before, after, _mean_std(gains, 100, 1)] if score else []),
            _mean_std(started, 100, 1),
            _mean_std(generated, 100, 1),
            _mean_std(decision, 1, 3),
            _mean_std([final_train_loss(frame) for _, frame, _ in runs], 1, 3),
        ]
        steps = max(int(frame["step"].max()) for _, frame, _ in runs)
        lines.append(f"| {name} | {len(runs)} | {' | '.join(cells)} | {steps} |")
    return "\n".join(lines) + "\n"


def evidence(
    groups: dict[str, list],
    records: dict[str, list],
    experiment: str,
    out: Path,
    untrained_generate: float | None = None,
) -> tuple[str, str, list[Path]]:
    """From the runs' per-question records: ``runs.csv`` (one row per run; a run that did not
    measure the untrained model's generate accuracy has ``untrained_generate``, a --baseline's),
    ``questions.csv`` (each run's outcome on each question), ``claims.md`` (each claim the grid
    can test, paired), ``claims.png`` (their intervals against zero, where there are any) and,
    on a split that mixes tasks, ``per_task.md`` (`runs/per_task.py`); returns
    (the title of this grid's tables, the records table: acc and acc_norm before and after,
    mean ± sample std over seeds and the 95 % interval over seeds and questions, the figure's
    files)."""
    from loralab.runs.claims import accuracy_cells, claims_markdown, estimate_cell, paired_claims
    from loralab.runs.claims_figure import claims_figure
    from loralab.runs.per_task import per_task_markdown
    from loralab.runs.records import (
        most_common_answer,
        runs_row,
        write_questions_csv,
        write_runs_csv,
    )

    rows = []
    for name, runs in groups.items():
        for (_, frame, _), record in zip(runs, records[name], strict=True):
            values = {
                "gen_acc_before": generate_before(frame, untrained_generate),
                "gen_acc_after": last_value(frame, "test/gen_acc"),
                "val_decision_loss": last_value(frame, "val/decision_loss"),
                "train_loss_final": final_train_loss(frame),
            }
            if values["gen_acc_after"] is None and record.generate_after:
                hits = list(record.generate_after.values())
                values["gen_acc_after"] = sum(hits) / len(hits)
            rows.append(runs_row(record, experiment, name, values))
    write_runs_csv(out / "runs.csv", rows)
    write_questions_csv(out / "questions.csv", records)
    title = grid_title(rows)
    claims = paired_claims(records)
    heading = f"### {experiment}: {title}"
    (out / "claims.md").write_text(f"{heading}\n\n" + claims_markdown(claims, title))
    by_task = per_task_markdown(records, claims, f"{heading}, by task")
    if by_task is not None:
        (out / "per_task.md").write_text(by_task)
    else:
        (out / "per_task.md").unlink(missing_ok=True)  # a table from an earlier grid would mislead
    figure = _save(claims_figure(claims, f"{experiment}: {title}"), out, "claims") if claims else []
    lines = [
        "| run | seeds | acc before | acc after | acc_norm before | acc_norm after |",
        "|---|---|---|---|---|---|",
    ]
    for name, members in records.items():
        cells = [
            accuracy_cells(members, metric, when)
            for metric in ("acc", "acc_norm")
            for when in ("before", "after")
        ]
        lines.append(f"| {name} | {len(members)} | {' | '.join(cells)} |")
    prior = most_common_answer([run for runs in records.values() for run in runs])
    if prior is not None:
        lines += [
            "",
            "Always giving the answer most often right among these test questions (per task where "
            "the split mixes tasks; chosen knowing the answers, so no constant answer scores more): "
            f"`acc` {estimate_cell(np.array([list(prior.values())], dtype=float))}.",
        ]
    return title, "\n".join(lines) + "\n", figure


def grid_title(rows: list[dict]) -> str:
    """``task, answer form, model, steps, test size`` of a grid's runs (each value once; a
    grid that mixes values lists them)."""

    def values(key: str) -> str:
        found = sorted({str(row[key]) for row in rows if row.get(key) not in (None, "")})
        return "/".join(found) if found else "?"

    return (
        f"{values('task')}, {values('answer_form')} answer form, {values('model')}, "
        f"{values('steps')} steps, {values('test_size')} test questions"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loralab-figures",
        description="Loss/accuracy curves (mean and spread over seeds) and the grid's evidence: "
        "runs.png/pdf (Figure 2 layout), train_loss.png/pdf (Figure 3 layout), runs.csv (one "
        "row per run), claims.md and claims.png (the papers' comparisons, paired on the same "
        "questions, with 95% intervals and verdicts: holds, reversed, not resolved at this "
        "size), accuracy.md "
        "(mean ± sample std over seeds, 95% interval over seeds and questions) and per_task.md "
        "for runs on a mixed test split (the commonsense mix).",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="loralab run directories")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument(
        "--smooth",
        type=int,
        default=1,
        help="draw the training loss as a trailing mean over this many steps (default 1: raw)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        metavar="EVAL_DIR",
        help="a loralab-eval folder of the untrained model (score or generate mode; repeat for "
        "both): the 'before' of runs that did not measure it, and in generate mode the "
        "accuracy curve's step 0",
    )
    parser.add_argument(
        "--run-eval",
        action="append",
        default=[],
        metavar="NAME",
        help="a loralab-eval folder inside every run directory (<run>/NAME) on that run's "
        "adapter: the 'after' of a mode the run did not log, e.g. generate mode after "
        "evaluation.generate_every=0 (repeat for several); a run that wrote its own "
        "per-question test record may lack it",
    )
    parser.add_argument(
        "--experiment",
        help="the grid's name in runs.csv and the tables (default: the --out folder's name)",
    )
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth {args.smooth}: must be an integer >= 1")
    try:
        runs = [load_run(d) for d in args.run_dirs]
        lacking: dict[str, list[str]] = {}  # --run-eval name -> runs standing on their record
        for run_dir, (_, _, summary) in zip(args.run_dirs, runs, strict=True):
            summary["evaluated"], skipped = load_run_evaluations(run_dir, args.run_eval)
            for name in skipped:
                lacking.setdefault(name, []).append(str(run_dir))
        for name, dirs in lacking.items():  # said, not silent: their generate "after" may read n/a
            print(
                f"loralab-figures: --run-eval {name}: {len(dirs)} run(s) have no "
                f"{name}/eval.json and stand on their own per-question test record (a "
                "generate-mode folder's accuracy reads n/a for them unless they logged "
                "generate mode themselves): " + ", ".join(dirs),
                file=sys.stderr,
            )
        baseline = load_baseline(args.baseline)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out}: is a file; name a folder (made if missing)")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"--out {args.out}: cannot make this folder ({err})") from None
    except (FileNotFoundError, ValueError) as err:
        print(f"loralab-figures: {err}", file=sys.stderr)
        sys.exit(2)
    groups = group_by_seed(runs)
    from loralab.runs.records import read_baseline, read_run

    before = read_baseline(args.baseline)
    where = {id(run): run_dir for run_dir, run in zip(args.run_dirs, runs, strict=True)}
    records = {
        name: [
            read_run(where[id(run)], run[0], run[1], run[2], tuple(args.run_eval), before)
            for run in members
        ]
        for name, members in groups.items()
    }
    experiment = args.experiment or args.out.resolve().name
    unrecorded = [
        str(run.run_dir) for members in records.values() for run in members if not run.after
    ]
    if unrecorded:  # e.g. a grid still running: its groups would drop out of the claims unsaid
        print(
            f"loralab-figures: {len(unrecorded)} run(s) without a per-question test record "
            "(unfinished, or made before records were kept); claims.md, per_task.md and the "
            "records table leave out their groups: " + ", ".join(unrecorded),
            file=sys.stderr,
        )
    all_recorded = not unrecorded
    try:
        title, evidence_table, claims_paths = evidence(
            groups, records, experiment, args.out, baseline.get("generate")
        )
    except ValueError as err:
        print(f"loralab-figures: {err}", file=sys.stderr)
        sys.exit(2)
    paths = (
        draw(groups, args.out, args.smooth, title, baseline)
        + draw_train_loss(groups, args.out, args.smooth, title)
        + claims_paths
    )
    table = (
        f"### {experiment}: {title}\n\n"
        "From the per-question records (mean ± sample std over seeds [95 % interval over seeds "
        "and questions], points):\n\n"
        + evidence_table
        + "\nFrom the logged curves (mean ± sample std over seeds):\n\n"
        + accuracy_table(groups, baseline, score=not all_recorded)
    )
    (args.out / "accuracy.md").write_text(table)
    print(table)
    print((args.out / "claims.md").read_text())
    if (args.out / "per_task.md").exists():
        print((args.out / "per_task.md").read_text())
    print("figures:", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
