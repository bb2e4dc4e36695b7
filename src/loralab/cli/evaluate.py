"""``loralab-eval``: accuracy of a saved adapter (or of the bare base model) on one task split.

Flow: validate the config (exit 2 on any bad value, before anything loads) -> the task's split
-> model (+ the adapter from ``adapter_dir``) on ``device`` -> predictions in ``score``,
``generate`` or ``cloze`` mode, under ``precision`` (``auto`` resolves as
``trainer.precision=auto`` does, so a run's adapter is scored with the numerics it was trained
and tested with) -> ``eval.json`` (config, command line, summary, per-record predictions),
``eval.md`` (the table) and ``predictions.jsonl`` (per question: each option's scores and the
pick under each metric, `evaluation/predictions_file.py`) in the run directory; the table is
printed. Unreadable or malformed data
also exits 2, with the message that names the file, record and field.

The run directory may be a training run's (``hydra.run.dir=<run>``): loralab-eval writes only
its own files there, never the run's ``.hydra/`` record (Hydra's writer is off in eval.yaml),
and a refused command (config, data or adapter) writes nothing at all: its log lines are held
in memory until every input is checked, and a run folder Hydra made for it is removed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from loralab import CONF_DIR
from loralab.cli.console import (
    EXIT_BAD_INPUT,
    hold_log_file,
    mark_task_started,
    open_log_file,
    run_entry_point,
)
from loralab.cli.resolvers import register_resolvers
from loralab.cli.validation import ConfigError, validate_config
from loralab.cli.yaml_tags import refuse_yaml_tags

log = logging.getLogger("loralab")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Evaluate as ``cfg`` says and write ``eval.json``, ``eval.md`` and ``predictions.jsonl``
    into ``run_dir``."""
    from loralab.cli.precision import forward_context
    from loralab.evaluation.predict import predict_split
    from loralab.evaluation.predictions_file import write_predictions
    from loralab.evaluation.report import summarize, to_markdown
    from loralab.tasks import DataError, build_task
    from loralab.tasks.text_answers import with_answer_form

    started = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if cfg.mode == "harness":
        return _run_harness(cfg, resolved, run_dir, started)
    task = build_task(resolved["task"], splits=(cfg.split,))  # data errors before the model loads
    if not task.splits[cfg.split]:
        source = resolved["task"]["source"]
        hint = ""
        if isinstance(source, str) and Path(source).is_file():
            hint = (
                f"; a single file is read as the train split: name its split, e.g. "
                f"'task.source={{{cfg.split}: {source}}}'"
            )
        raise DataError(f"task {task.name!r} has no {cfg.split} records at {source}{hint}")
    if cfg.mode == "cloze" and not task.whole_options:  # a record without option texts: exit 2 now
        task = with_answer_form(task, "text")
    model, tokenizer, device, precision = _adapted_model(cfg, resolved)
    with forward_context(precision, device):
        results, dropped = predict_split(
            model,
            tokenizer,
            task,
            cfg.split,
            cfg.mode,
            resolved["data"],
            cfg.max_new_tokens,
            progress=True,
            num_beams=cfg.num_beams,
        )
    summary = summarize(results, dropped)
    adapter = cfg.adapter_dir or "base model"
    title = (
        f"{task.name}/{cfg.split}, {cfg.mode} mode, {resolved['model']['name']} + {adapter} "
        f"({device.type}, {precision})"
    )
    table = to_markdown(summary, title)
    records = [_without_scores(result) for result in results]
    _write_report(
        run_dir, resolved, device, precision, started, table, summary=summary, records=records
    )
    write_predictions(run_dir / "predictions.jsonl", results)
    return {"summary": summary, "table": table, "run_dir": str(run_dir)}


def _adapted_model(cfg: DictConfig, resolved: dict):
    """(model with the adapter of ``adapter_dir``, tokenizer, device, precision)."""
    from loralab.adapters import load_adapter
    from loralab.cli.precision import resolve_device, resolve_precision
    from loralab.models import load_model

    model, tokenizer = load_model(resolved["model"])
    if cfg.adapter_dir is not None:
        load_adapter(model, cfg.adapter_dir)
    open_log_file()  # every input is checked: the log (held in memory so far) may be written
    device = resolve_device(cfg.device)
    model.to(device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    precision = resolve_precision({"precision": cfg.precision, "accelerator": accelerator}, model)
    return model, tokenizer, device, precision


def _run_harness(cfg: DictConfig, resolved: dict, run_dir: Path, started: float) -> dict:
    """``mode=harness``: lm-evaluation-harness's tasks on the adapted model; its results (each
    metric with its standard error, as lm-eval reports them) in ``eval.json`` and ``eval.md``."""
    from loralab.cli.precision import forward_context
    from loralab.evaluation.harness import harness_table, run_harness

    model, tokenizer, device, precision = _adapted_model(cfg, resolved)
    harness = resolved["harness"]
    with forward_context(precision, device):
        results = run_harness(
            model,
            tokenizer,
            harness["tasks"],
            include_path=harness["include_path"],
            limit=harness["limit"],
            num_fewshot=harness["num_fewshot"],
            batch_size=int(resolved["data"]["eval_batch_size"]),
        )
    adapter = cfg.adapter_dir or "base model"
    title = f"lm-evaluation-harness, {resolved['model']['name']} + {adapter} ({device.type}, {precision})"
    table = harness_table(results, title)
    _write_report(run_dir, resolved, device, precision, started, table, harness=results)
    return {"summary": results, "table": table, "run_dir": str(run_dir)}


def _write_report(
    run_dir: Path, resolved: dict, device, precision: str, started: float, table: str, **results
) -> None:
    """``eval.json`` (the config, command line, device, commit, precision, wall time and
    ``results``) and ``eval.md`` (``table``) in ``run_dir``: every mode's record."""
    from loralab.runs.provenance import device_name, source_commit

    run_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "config": resolved,
        "overrides": _command_line(),
        "device": str(device),
        "device_name": device_name("cpu" if device.type == "cpu" else None),
        "commit": source_commit(),
        "precision": precision,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **results,
    }
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2, default=str))
    (run_dir / "eval.md").write_text(table)


def _without_scores(result: dict) -> dict:
    """A result without its per-option scores: those are predictions.jsonl's."""
    return {key: value for key, value in result.items() if key != "option_scores"}


def _command_line() -> list[str]:
    """The overrides this evaluation was given (none when it runs outside Hydra's main)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    mark_task_started()
    hold_log_file()  # a refused command must not create or append evaluate.log
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate_config(cfg, "eval")
    except ConfigError as err:
        _refuse(run_dir, str(err))
    from loralab.adapters.io import AdapterFileError
    from loralab.tasks import DataError

    try:
        outcome = run(cfg, run_dir)
    except (DataError, AdapterFileError) as err:  # each names the file (record, field, tensor)
        _refuse(run_dir, str(err))
    print(outcome["table"])
    files = "eval.json, eval.md" + ("" if cfg.mode == "harness" else ", predictions.jsonl")
    print(f"written: {outcome['run_dir']}/{files}")


def _refuse(run_dir: Path, message: str) -> None:
    """Exit 2 with `message`, removing the empty run folder Hydra made for this command."""
    from loralab.runs.ownership import remove_if_made_by_us

    remove_if_made_by_us(run_dir)
    print(f"loralab-eval: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def main() -> None:
    """Console-script entry point. Exit codes: 0 done, 1 unexpected error, 2 bad config or
    input (also Hydra's own: unknown option or key, a YAML tag in a config file)."""
    refuse_yaml_tags()
    register_resolvers()
    run_entry_point(_hydra_main)


if __name__ == "__main__":
    main()
