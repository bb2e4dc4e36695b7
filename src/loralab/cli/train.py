"""``loralab-train``: compose the Hydra config, train the adapters, write every output.

Flow: validate the whole config (exit 2 on any bad value, before anything loads) -> model ->
adapters -> task data -> Lightning Trainer (test before, fit, test after) -> adapter files,
curves PNG, summary table. ``run`` reads as that sequence, one named function per step; what
the run directory may hold and what a finished run reports live in ``loralab.runs``.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from loralab import CONF_DIR
from loralab.cli.console import (
    EXIT_BAD_INPUT,
    JobFailed,
    fail,
    hold_log_file,
    mark_task_started,
    open_log_file,
    quiet_known_warnings,
    route_lightning_logs,
    run_entry_point,
)
from loralab.cli.resolvers import register_resolvers
from loralab.cli.validation import ConfigError, validate_config

log = logging.getLogger("loralab")

EXIT_CONFIG, EXIT_NONFINITE = EXIT_BAD_INPUT, 3


def run(cfg: DictConfig, run_dir: Path):
    """Train as ``cfg`` says, writing outputs into ``run_dir`` only; returns (summary, model).

    Every check comes first (config, checkpoint, model, adapters, data, precision) and writes
    nothing; only then does the run take ``run_dir`` (its lock, log file, config record and
    metrics), so a refused command leaves every existing file as it was."""
    from loralab.cli.precision import resolve_precision
    from loralab.runs.checkpoints import CHECKPOINT_DIR, LAST, run_identity
    from loralab.runs.interrupt import StopOnSignal
    from loralab.runs.loggers import build_loggers
    from loralab.runs.run_dir import check_resume_matches, checkpoint_to_resume

    started = time.perf_counter()
    checkpoint, saved = checkpoint_to_resume(cfg.resume, run_dir)
    resolved = seed_and_resolve(cfg)
    optimizer_cfg, adapter_cfg = optimizer_and_adapter_settings(resolved)
    model, tokenizer = build_adapted_model(resolved, adapter_cfg)
    if checkpoint is not None:
        check_resume_matches(checkpoint, saved, resolved, model)
    task, datamodule = build_data(resolved, tokenizer)
    module = build_module(model, optimizer_cfg, resolved)
    module.run_identity = run_identity(resolved)
    module.clock_started = started
    module.wall_time_before = (saved or {}).get("loralab_wall_time_s", 0.0)
    precision = resolve_precision(resolved["trainer"], model)

    lock = take_run_dir(cfg, run_dir, saved)
    try:
        if checkpoint is not None:
            log.info("resuming %s from step %d (%s)", run_dir, saved["global_step"], checkpoint)
        loggers = build_loggers(
            resolved["logger"], run_dir, cfg.run_name, resolved, resume=checkpoint is not None
        )
        stop = StopOnSignal(run_dir / CHECKPOINT_DIR / LAST)
        callbacks = run_callbacks(resolved, run_dir, task, tokenizer, stop)
        trainer = build_trainer(resolved, run_dir, precision, loggers, callbacks)
        with stop.watching():
            evaluate_at_start(trainer, module, datamodule, task, run_dir, resolved, checkpoint)
            trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        stop.raise_if_stopped()
        selection = select_adapter(trainer, model, adapter_cfg, run_dir)
        test_at_end(trainer, module, datamodule, task, run_dir, saved)
        for logger in loggers:
            logger.finalize("success")
        summary = write_outputs(cfg, resolved, run_dir, trainer, model, adapter_cfg, datamodule)
        summary.update(precision=precision, wall_time_s=round(module.wall_time_s(), 1))
        if selection is not None:
            summary["selection"] = selection
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    finally:
        _close_wandb()
        lock.release()
    return summary, model


def seed_and_resolve(cfg: DictConfig) -> dict:
    """Seed every generator from ``cfg.seed``; the config as plain, resolved values."""
    import lightning as L
    import torch

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision("high")
    return OmegaConf.to_container(cfg, resolve=True)


def optimizer_and_adapter_settings(resolved: dict):
    """The checked optimizer and adapter settings. The one place the optimizer's name becomes
    the adapters' gate-rescaling switch (without a router there is no gate to rescale)."""
    from loralab.adapters import AdapterConfig
    from loralab.optim import OptimizerConfig

    optimizer_cfg = OptimizerConfig.from_mapping(resolved["optimizer"])
    routed = resolved["adapter"].get("num_experts", 1) > 1
    adapter_values = dict(resolved["adapter"], gate_rescale=optimizer_cfg.gate_rescale and routed)
    return optimizer_cfg, AdapterConfig.from_mapping(adapter_values)


def build_adapted_model(resolved: dict, adapter_cfg):
    """The base model with its adapters injected, in train mode; (model, tokenizer)."""
    from loralab.adapters import inject_adapters
    from loralab.models import load_model

    model, tokenizer = load_model(resolved["model"])
    layers = inject_adapters(model, adapter_cfg)
    model.train()  # Lightning keeps the mode it finds; adapter dropout needs train mode
    log.info(
        "wrapped %d linear modules; %s trainable parameters", len(layers), f"{trainable(model):,}"
    )
    return model, tokenizer


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_data(resolved: dict, tokenizer):
    """The task and its data module, read and checked here, before the run directory is taken."""
    from loralab.data.datamodule import TaskDataModule
    from loralab.tasks import build_task

    task = build_task(resolved["task"])
    datamodule = TaskDataModule(task, tokenizer, dict(resolved["data"], seed=resolved["seed"]))
    datamodule.setup()
    datamodule.check_splits(resolved["trainer"])
    return task, datamodule


def build_module(model, optimizer_cfg, resolved: dict):
    from loralab.module import FineTuningModule

    evaluation = resolved["evaluation"]
    return FineTuningModule(
        model,
        optimizer_cfg,
        router_stats_every=evaluation["router_stats_every"],
        router_stats_per_layer=evaluation["router_stats_per_layer"],
        nonfinite=resolved["nonfinite"],
    )


def take_run_dir(cfg: DictConfig, run_dir: Path, saved: dict | None):
    """Every check has passed: lock ``run_dir`` (``runs.run_dir.claim_run_dir``), then log to
    its file and record the config. Returns the lock, released when the run ends."""
    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch.utilities import rank_zero_only

    from loralab.runs.run_dir import claim_run_dir, write_config_record

    resumed_step = None if saved is None else saved["global_step"]
    lock = claim_run_dir(run_dir, resumed_step, rank_zero_only.rank)
    open_log_file()
    if rank_zero_only.rank == 0:
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
        write_config_record(cfg, run_dir, overrides)
    return lock


def run_callbacks(resolved: dict, run_dir: Path, task, tokenizer, stop) -> list:
    """Checkpoints, the ``stop`` on a signal, progress display, generate-mode accuracy and any
    planted debug faults, in the order Lightning calls them."""
    from loralab.cli.progress import ProgressLog, StepProgressBar
    from loralab.evaluation.generate_accuracy import GenerateAccuracy
    from loralab.runs.checkpoints import (
        CHECKPOINT_DIR,
        LAST,
        FinalStepCheckpoint,
        StepCheckpoint,
    )
    from loralab.runs.faults import PlantedFaults
    from loralab.runs.selection import BestAdapter
    from loralab.runs.summary import PREDICTIONS_DIR

    checkpoints = StepCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="step{step}",
        auto_insert_metric_name=False,
        every_n_train_steps=resolved["checkpoint"]["every_n_steps"] or None,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,  # one last.ckpt, replaced atomically, never last-v1
    )
    final = FinalStepCheckpoint(run_dir / CHECKPOINT_DIR / LAST)
    callbacks = [checkpoints, final, stop, StepProgressBar()]
    debug = resolved["debug"]
    if debug["nan_at_step"] is not None or debug["kill_at_step"] is not None:
        callbacks.append(
            PlantedFaults(debug["nan_at_step"], debug["kill_at_step"], debug["kill_signal"])
        )
    if not sys.stdout.isatty():  # a batch job's log file: the bar shows only its end
        callbacks.append(ProgressLog())
    select_by = resolved["checkpoint"].get("select_by")
    if select_by:
        callbacks.append(BestAdapter(select_by, resolved["checkpoint"]["select_mode"]))
    evaluation = resolved["evaluation"]
    if evaluation["generate_every"]:
        data_cfg = dict(resolved["data"], seed=resolved["seed"])
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
                num_beams=evaluation["num_beams"],
            )
        )
    return callbacks


def build_trainer(resolved: dict, run_dir: Path, precision: str, loggers, callbacks):
    import lightning as L

    from loralab.runs.checkpoints import AtomicCheckpointIO

    return L.Trainer(
        **lightning_trainer_args(resolved["trainer"], precision),
        logger=loggers,
        default_root_dir=run_dir,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # ResumableSampler shards and resumes by itself
    )


def evaluate_at_start(trainer, module, datamodule, task, run_dir, resolved, checkpoint) -> None:
    """A new run's test pass before training (``evaluation.before_training``) and its
    validation at step 0 (``evaluation.validate_at_start``); a resumed run has both."""
    from loralab.runs.summary import record_test

    if checkpoint is not None:
        return
    evaluation = resolved["evaluation"]
    if evaluation["before_training"]:
        trainer.test(module, datamodule=datamodule, verbose=False)
        record_test(trainer, module, task, datamodule, run_dir)
    if evaluation["validate_at_start"] and validates(datamodule, resolved["trainer"]):
        trainer.validate(module, datamodule=datamodule, verbose=False)


def select_adapter(trainer, model, adapter_cfg, run_dir: Path) -> dict | None:
    """With ``checkpoint.select_by``: keep the last adapter as ``adapter_last/`` and put the
    selected weights in the model, which the final test and ``adapter/`` then use. Returns
    what the summary records of the selection (None without one)."""
    from loralab.adapters import save_adapter
    from loralab.runs.selection import BestAdapter

    selector = next((c for c in trainer.callbacks if isinstance(c, BestAdapter)), None)
    if selector is None:
        return None
    save_adapter(model, run_dir / "adapter_last", adapter_cfg)
    if selector.restore_best(model):
        log.info(
            "selected the adapter of step %d (%s %.4g); the last is in adapter_last/",
            selector.best_step,
            selector.metric,
            selector.best_value,
        )
    return selector.record(trainer.global_step)


def test_at_end(trainer, module, datamodule, task, run_dir: Path, saved: dict | None) -> None:
    """The test pass after training, logged at the last step (also when a resume found the
    run already at its last step) and recorded per question."""
    from loralab.runs.checkpoints import close_finished_loop
    from loralab.runs.summary import record_test

    if saved is not None and saved["global_step"] >= trainer.max_steps:
        close_finished_loop(trainer)
    trainer.test(module, datamodule=datamodule, verbose=False)
    record_test(trainer, module, task, datamodule, run_dir)


def write_outputs(cfg, resolved, run_dir: Path, trainer, model, adapter_cfg, datamodule) -> dict:
    """The adapter folder, the curves PNG and the run's summary (returned; the caller adds
    precision and wall time and writes summary.json)."""
    from loralab.adapters import save_adapter
    from loralab.runs.curves import plot_run_curves
    from loralab.runs.loggers import metrics_path
    from loralab.runs.provenance import device_name, source_commit
    from loralab.runs.summary import run_summary

    adapter_dir = run_dir / "adapter"
    save_adapter(model, adapter_dir, adapter_cfg)
    curves = plot_run_curves(metrics_path(run_dir), run_dir / "curves.png", title=cfg.run_name)
    summary = run_summary(cfg.run_name, run_dir)
    summary.update(
        steps=trainer.global_step,
        device=device_name(resolved["trainer"].get("accelerator")),
        commit=source_commit(),
        trainable_parameters=trainable(model),
        adapter_dir=str(adapter_dir),
        curves_png=str(curves),
    )
    dropped = {split: n for split, n in datamodule.dropped.items() if n}
    if dropped:  # data.overflow=drop: what the run did not see, split by split
        summary["examples_dropped"] = dropped
    return summary


def validates(datamodule, trainer_cfg: dict) -> bool:
    """Whether the run validates at all: a validation split, validation batches allowed."""
    allowed = trainer_cfg.get("limit_val_batches", 1.0) != 0
    return allowed and bool(datamodule.encoded.get("validation"))


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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        return _train_job(cfg)
    except JobFailed:  # a multirun's job: recorded, reported when the sweep ends
        return None


def _train_job(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    mark_task_started()
    register_resolvers()  # also in a launcher's own worker process (e.g. submitit)
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
    from loralab.runs.run_dir import UnwritableRunError
    from loralab.runs.summary import format_summary, objective
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


def main() -> None:
    """Console-script entry point. Exit codes: 0 done, 1 unexpected error, 2 bad config or
    input (also Hydra's own: unknown option or key, a YAML tag in a config file), 3 non-finite
    loss or gradient, 128 + N stopped by signal N (SIGTERM, Ctrl+C) with a checkpoint saved."""
    from loralab.cli.yaml_tags import refuse_yaml_tags

    quiet_known_warnings()
    refuse_yaml_tags()
    register_resolvers()
    run_entry_point(_hydra_main)


if __name__ == "__main__":
    main()
