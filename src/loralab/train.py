"""``loralab-train``: compose the Hydra config, train the adapters, write every output.

Flow: validate the whole config (exit 2 on any bad value, before anything loads) -> model ->
adapters -> task data -> Lightning Trainer (test before, fit, test after) -> adapter files,
curves PNG, summary table.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from loralab import CONF_DIR
from loralab.console import (
    EXIT_BAD_INPUT,
    JobFailed,
    fail,
    hold_log_file,
    mark_task_started,
    quiet_known_warnings,
    route_lightning_logs,
    run_entry_point,
)
from loralab.validation import ConfigError, validate_config

log = logging.getLogger("loralab")

EXIT_CONFIG, EXIT_NONFINITE = EXIT_BAD_INPUT, 3


def run(cfg: DictConfig, run_dir: Path):
    """Train as ``cfg`` says, writing outputs into ``run_dir`` only; returns (summary, model).

    Every check comes first (config, checkpoint, model, adapters, data, precision) and writes
    nothing; only then does the run take ``run_dir`` (its lock, log file, config record and
    metrics), so a refused command leaves every existing file as it was."""
    import lightning as L
    import torch

    from loralab.adapters import AdapterConfig, inject_adapters, save_adapter
    from loralab.data.datamodule import TaskDataModule
    from loralab.evaluation.generate_accuracy import GenerateAccuracy
    from loralab.models import load_model
    from loralab.module import AdapterModule
    from loralab.optim import OptimizerConfig
    from loralab.precision import resolve_precision
    from loralab.progress import ProgressLog, StepProgressBar
    from loralab.runs.checkpoints import (
        CHECKPOINT_DIR,
        LAST,
        AtomicCheckpointIO,
        FinalStepCheckpoint,
        ResumeMismatchError,
        StepCheckpoint,
        resume_mismatches,
        run_identity,
    )
    from loralab.runs.curves import plot_run_curves
    from loralab.runs.faults import PlantedFaults
    from loralab.runs.interrupt import StopOnSignal
    from loralab.runs.loggers import build_loggers, metrics_path
    from loralab.runs.provenance import device_name, source_commit
    from loralab.tasks import build_task

    started = time.perf_counter()
    checkpoint, saved = checkpoint_to_resume(cfg.resume, run_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # the one place the optimizer's name becomes the adapters' gate-rescaling switch
    optimizer_cfg = OptimizerConfig.from_mapping(resolved["optimizer"])
    routed = resolved["adapter"].get("num_experts", 1) > 1  # without a router there is no gate
    adapter_values = dict(resolved["adapter"], gate_rescale=optimizer_cfg.gate_rescale and routed)
    adapter_cfg = AdapterConfig.from_mapping(adapter_values)

    model, tokenizer = load_model(resolved["model"])
    layers = inject_adapters(model, adapter_cfg)
    model.train()  # Lightning keeps the mode it finds; adapter dropout needs train mode
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("wrapped %d linear modules; %s trainable parameters", len(layers), f"{trainable:,}")
    if checkpoint is not None:
        shapes = {
            f"model.{n}": tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad
        }
        mismatches = resume_mismatches(saved, resolved, shapes)
        if mismatches:
            raise ResumeMismatchError(
                f"cannot resume from {checkpoint}: it was written by a run configured "
                "differently, and nothing was written:\n  - "
                + "\n  - ".join(mismatches[:20])
                + "\nresume with the checkpoint's settings (see its run's .hydra/config.yaml), "
                "or start a new run (another hydra.run.dir, no resume)"
            )

    task = build_task(resolved["task"])
    data_cfg = dict(resolved["data"], seed=cfg.seed)
    datamodule = TaskDataModule(task, tokenizer, data_cfg)
    datamodule.setup()  # the data is read and checked here, before the run directory is taken
    datamodule.check_splits(resolved["trainer"])
    module = AdapterModule(
        model,
        optimizer_cfg,
        router_stats_every=cfg.evaluation.router_stats_every,
        router_stats_per_layer=cfg.evaluation.router_stats_per_layer,
        nonfinite=cfg.nonfinite,
    )
    module.run_identity = run_identity(resolved)
    precision = resolve_precision(resolved["trainer"], model)

    lock = take_run_dir(cfg, run_dir, None if saved is None else saved["global_step"])
    try:
        if checkpoint is not None:
            log.info("resuming %s from step %d (%s)", run_dir, saved["global_step"], checkpoint)
        loggers = build_loggers(
            resolved["logger"], run_dir, cfg.run_name, resolved, resume=checkpoint is not None
        )
        checkpoints = StepCheckpoint(
            dirpath=run_dir / CHECKPOINT_DIR,
            filename="step{step}",
            auto_insert_metric_name=False,
            every_n_train_steps=cfg.checkpoint.every_n_steps or None,
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,  # one last.ckpt, replaced atomically, never last-v1
        )
        stop = StopOnSignal(run_dir / CHECKPOINT_DIR / LAST)
        final = FinalStepCheckpoint(run_dir / CHECKPOINT_DIR / LAST)
        callbacks = [checkpoints, final, stop, StepProgressBar()]
        debug = resolved["debug"]
        if debug["nan_at_step"] is not None or debug["kill_at_step"] is not None:
            callbacks.append(
                PlantedFaults(debug["nan_at_step"], debug["kill_at_step"], debug["kill_signal"])
            )
        if not sys.stdout.isatty():  # a batch job's log file: the bar shows only its end
            callbacks.append(ProgressLog())
        evaluation = resolved["evaluation"]
        if evaluation["generate_every"]:
            room = dict(data_cfg, max_length=data_cfg["max_length"] + evaluation["max_new_tokens"])
            callbacks.append(
                GenerateAccuracy(
                    task,
                    tokenizer,
                    room,  # the prompt keeps data.max_length, as in training; the answer is extra
                    evaluation["generate_every"],
                    evaluation["generate_split"],
                    evaluation["max_new_tokens"],
                    evaluation.get("generate_at_start", True),
                    predictions_dir=run_dir / PREDICTIONS_DIR,
                )
            )
        trainer = L.Trainer(
            **lightning_trainer_args(resolved["trainer"], precision),
            logger=loggers,
            default_root_dir=run_dir,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            use_distributed_sampler=False,  # ResumableSampler shards and resumes by itself
        )
        with stop.watching():
            if checkpoint is None and cfg.evaluation.before_training:
                trainer.test(module, datamodule=datamodule, verbose=False)
                record_test(trainer, module, task, datamodule, run_dir)
            if (
                checkpoint is None
                and evaluation["validate_at_start"]
                and validates(datamodule, resolved["trainer"])
            ):
                trainer.validate(module, datamodule=datamodule, verbose=False)  # step 0
            trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        stop.raise_if_stopped()
        if saved is not None and saved["global_step"] >= trainer.max_steps:
            close_finished_loop(trainer)
        trainer.test(module, datamodule=datamodule, verbose=False)
        record_test(trainer, module, task, datamodule, run_dir)
        for logger in loggers:
            logger.finalize("success")

        adapter_dir = run_dir / "adapter"
        save_adapter(model, adapter_dir, adapter_cfg)
        curves = plot_run_curves(metrics_path(run_dir), run_dir / "curves.png", title=cfg.run_name)
        summary = run_summary(cfg, run_dir)
        summary.update(
            steps=trainer.global_step,
            precision=precision,
            wall_time_s=round(time.perf_counter() - started, 1),
            device=device_name(resolved["trainer"].get("accelerator")),
            commit=source_commit(),
            trainable_parameters=trainable,
            adapter_dir=str(adapter_dir),
            curves_png=str(curves),
        )
        dropped = {split: n for split, n in datamodule.dropped.items() if n}
        if dropped:  # data.overflow=drop: what the run did not see, split by split
            summary["examples_dropped"] = dropped
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    finally:
        _close_wandb()
        lock.release()
    return summary, model


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


def validates(datamodule, trainer_cfg: dict) -> bool:
    """Whether the run validates at all: a validation split, validation batches allowed."""
    allowed = trainer_cfg.get("limit_val_batches", 1.0) != 0
    return allowed and bool(datamodule.encoded.get("validation"))


def close_finished_loop(trainer) -> None:
    """A run resumed from a checkpoint of its last step trains nothing, and Lightning's loop
    then keeps the counters of that step: the final test would be logged a step and an epoch
    before where the uninterrupted run logs it. Close the step, and the epoch of the last
    batch, as fit does."""
    loop = trainer.fit_loop
    loop.epoch_loop._batches_that_stepped = trainer.global_step
    batches = trainer.lightning_module.batches_done
    loop.epoch_progress.current.completed = -(-batches // trainer.num_training_batches)


def checkpoint_to_resume(resume: str | None, run_dir: Path):
    """``(path, state)`` of the checkpoint this run continues, or ``(None, None)``; refuses
    (writing nothing) a run directory that holds another run."""
    from loralab.runs.checkpoints import CHECKPOINT_DIR, find_resume_checkpoint
    from loralab.runs.loggers import metrics_path

    found = find_resume_checkpoint(resume, run_dir)
    checkpoint, saved = found if found is not None else (None, None)
    own = checkpoint is not None and checkpoint.resolve().parent.parent == run_dir.resolve()
    if metrics_path(run_dir).is_file() and not own:
        if checkpoint is not None:
            raise FileExistsError(
                f"{run_dir} already holds a run (metrics.csv), not the one that wrote "
                f"{checkpoint}: continue that run in an empty hydra.run.dir, or this one's with "
                "resume=auto (nothing was written)"
            )
        if resume != "auto":
            raise FileExistsError(
                f"{run_dir} already holds a run (metrics.csv); pass resume=auto to continue it "
                "or choose another hydra.run.dir: nothing was overwritten"
            )
    if run_dir.exists() and not os.access(run_dir, os.W_OK):
        raise UnwritableRunError(
            f"cannot write the run's outputs to {run_dir}: permission denied; choose another "
            "hydra.run.dir (nothing was trained)"
        )
    folder = run_dir / CHECKPOINT_DIR
    if folder.exists() and not folder.is_dir():
        raise UnwritableRunError(
            f"cannot write the run's checkpoints to {folder}: a file is in the folder's place; "
            "choose another hydra.run.dir or free that path (nothing was trained)"
        )
    return checkpoint, saved


def take_run_dir(cfg: DictConfig, run_dir: Path, resumed_step: int | None):
    """Every check has passed: lock ``run_dir`` for this process (a second one is refused),
    then write into it: the log file, the config record, metrics cut to the resumed step.
    Returns the lock, which the caller releases when the run ends. The other processes of a
    multi-device run share their rank 0's directory and only log."""
    from lightning.pytorch.utilities import rank_zero_only

    from loralab.console import open_log_file
    from loralab.runs.checkpoints import CHECKPOINT_DIR
    from loralab.runs.loggers import metrics_path, truncate_metrics
    from loralab.runs.ownership import RunLock

    lock = RunLock(run_dir)
    if rank_zero_only.rank != 0:  # a DDP worker Lightning started: its rank-0 process owns it
        open_log_file()
        return lock
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except PermissionError as err:
        raise UnwritableRunError(
            f"cannot write the run's outputs to {run_dir}: {err.strerror}; choose another "
            "hydra.run.dir (nothing was trained)"
        ) from None
    try:
        ensure_writable(run_dir / CHECKPOINT_DIR)
        truncate_metrics(metrics_path(run_dir), resumed_step or 0)
    except BaseException:
        lock.release()
        raise
    open_log_file()
    write_config_record(cfg, run_dir)
    return lock


def run_summary(cfg: DictConfig, run_dir: Path) -> dict:
    """Test accuracy before and after (per task too on a mixed test split) from metrics.csv."""
    from loralab.evaluation.option_metrics import METRICS
    from loralab.runs.loggers import before_and_after, before_and_after_by_task, metrics_path

    before, after = before_and_after(metrics_path(run_dir), "test/acc")
    by_task = before_and_after_by_task(metrics_path(run_dir))
    summary = {
        "run_name": cfg.run_name,
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


def write_config_record(cfg: DictConfig, run_dir: Path) -> None:
    """`.hydra/config.yaml` (the composed config) and `.hydra/overrides.yaml` (the command
    line), written by the run itself once everything is checked; Hydra's own writer is off
    (`hydra.output_subdir: null`) because it rewrote them before any check, so a refused command
    replaced a finished run's record. A resume rewrites them with its (compatible) config."""
    from hydra.core.hydra_config import HydraConfig

    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    OmegaConf.save(OmegaConf.create(overrides), folder / "overrides.yaml")


class UnwritableRunError(OSError):
    """The run's output folder cannot be written (found before anything trains)."""


def ensure_writable(folder: Path) -> None:
    """Create `folder` and write a probe file into it now, so that a read-only disk or a file in
    the folder's place stops the run before training, not after it with the adapter lost."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UnwritableRunError(
            f"cannot write the run's checkpoints to {folder}: {err.strerror or err}; choose "
            "another hydra.run.dir or free that path (nothing was trained)"
        ) from None


def lightning_trainer_args(trainer_cfg: dict, precision: str) -> dict:
    """The ``trainer`` config as Lightning's Trainer takes it. loralab counts every interval in
    optimizer steps; Lightning counts ``val_check_interval`` in batches, which under gradient
    accumulation are ``accumulate_grad_batches`` per step."""
    args = dict(trainer_cfg, precision=precision)
    interval = args.get("val_check_interval")
    if isinstance(interval, int) and not isinstance(interval, bool):
        args["val_check_interval"] = interval * int(args.get("accumulate_grad_batches", 1))
    return args


def _close_wandb() -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        return _train_job(cfg)
    except JobFailed:  # a multirun's job: recorded, reported when the sweep ends
        return None


def _train_job(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    mark_task_started()
    hold_log_file()  # train.log is written only once the run owns its directory
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate_config(cfg)
    except ConfigError as err:
        refuse(run_dir, EXIT_CONFIG, str(err))
    route_lightning_logs()
    from loralab.module import NonFiniteError
    from loralab.runs.checkpoints import (
        CorruptCheckpointError,
        ResumeMismatchError,
        UnsafeCheckpointError,
    )
    from loralab.runs.interrupt import RunInterrupted
    from loralab.runs.loggers import MetricsFileError
    from loralab.runs.ownership import RunDirectoryBusyError
    from loralab.tasks import DataError

    try:
        summary, _ = run(cfg, run_dir)
    except (NonFiniteError, FloatingPointError) as err:  # the latter from the preconditioner
        print(f"loralab-train: stopped: {err}; the last good checkpoint is kept", file=sys.stderr)
        if cfg.optimized_metric is not None:  # a diverged trial: the worst score, search goes on
            return worst_score()
        fail(EXIT_NONFINITE)
    except RunInterrupted as stopped:
        print(
            f"loralab-train: {stopped}; continue with:\n  {resume_command(run_dir)}",
            file=sys.stderr,
        )
        fail(stopped.exit_code)
    except (
        UnsafeCheckpointError,
        ResumeMismatchError,
        CorruptCheckpointError,
        DataError,
        FileNotFoundError,
        FileExistsError,
        UnwritableRunError,
        MetricsFileError,
        RunDirectoryBusyError,
    ) as err:
        refuse(run_dir, EXIT_CONFIG, str(err))
    print(format_summary(summary))
    if cfg.optimized_metric is not None:
        return objective(summary, cfg.optimized_metric)
    return None


def refuse(run_dir: Path, code: int, message: str) -> None:
    """A refused command: remove the empty run folder Hydra made for it, say why, exit."""
    from loralab.runs.ownership import remove_if_made_by_us

    remove_if_made_by_us(run_dir)
    print(f"loralab-train: {message}", file=sys.stderr)
    fail(code)


def resume_command(run_dir: Path) -> str:
    """The command line that continues the run in ``run_dir`` from its last checkpoint."""
    from hydra.core.hydra_config import HydraConfig

    skip = ("resume=", "hydra.", "debug.")
    kept = [o for o in HydraConfig.get().overrides.task if not o.startswith(skip)]
    words = ["loralab-train", *kept, "resume=auto", f"hydra.run.dir={run_dir}"]
    return " ".join(shlex.quote(word) for word in words)


def worst_score() -> float:
    """What a diverged run scores in a sweep: -inf when the sweeper maximises, +inf when it
    minimises (Optuna's `direction`), so the search learns to avoid that region."""
    from hydra.core.hydra_config import HydraConfig

    direction = HydraConfig.get().sweeper.get("direction", "maximize")
    return float("inf") if str(direction).lower().startswith("min") else float("-inf")


def objective(summary: dict, metric: str) -> float:
    """The last logged value of `metric` (a metrics.csv column), what a sweeper optimises."""
    from loralab.runs.loggers import before_and_after

    _, last = before_and_after(Path(summary["metrics_csv"]), metric)
    if last is None:
        raise ValueError(
            f"optimized_metric={metric!r} was never logged in {summary['metrics_csv']}: "
            "name a logged column such as val/acc or val/loss"
        )
    return float(last)


def main() -> None:
    """Console-script entry point. Exit codes: 0 done, 1 unexpected error, 2 bad config or
    input (also Hydra's own: unknown option or key, a YAML tag in a config file), 3 non-finite
    loss or gradient, 128 + N stopped by signal N (SIGTERM, Ctrl+C) with a checkpoint saved."""
    from loralab.yaml_tags import refuse_yaml_tags

    quiet_known_warnings()
    refuse_yaml_tags()
    run_entry_point(_hydra_main)


if __name__ == "__main__":
    main()
