"""``loralab-eval``: accuracy of a saved adapter (or of the bare base model) on one task split.

Flow: validate the config (exit 2 on any bad value, before anything loads) -> the task's split
-> model (+ the adapter from ``adapter_dir``) -> predictions in ``score`` or ``generate``
mode -> ``eval.json`` (config, summary, per-record predictions) and ``eval.md`` (the table) in
the run directory; the table is printed. Unreadable or malformed data also exits 2, with the
message that names the file, record and field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from loralab import CONF_DIR
from loralab.console import EXIT_BAD_INPUT, mark_task_started, run_entry_point
from loralab.validation import ConfigError

log = logging.getLogger("loralab")


def validate_eval_config(cfg: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` listing every invalid value of a composed ``eval`` config."""
    from loralab.data.encoding import OVERFLOW_MODES
    from loralab.evaluation.predict import MODES
    from loralab.models.loading import DTYPES, SOURCES
    from loralab.tasks import SPLITS, task_config_errors

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    model, data = plain["model"], plain["data"]
    errors = task_config_errors(plain["task"])
    if model["source"] not in SOURCES:
        errors.append(f"model.source={model['source']!r} must be one of {list(SOURCES)}")
    if model["dtype"] not in DTYPES:
        errors.append(f"model.dtype={model['dtype']!r} must be one of {list(DTYPES)}")
    if plain["split"] not in SPLITS:
        errors.append(f"split={plain['split']!r} must be one of {list(SPLITS)}")
    if plain["mode"] not in MODES:
        errors.append(f"mode={plain['mode']!r} must be one of {list(MODES)}")
    for key, value, least in [
        ("max_new_tokens", plain["max_new_tokens"], 1),
        ("data.eval_batch_size", data["eval_batch_size"], 1),
        ("data.max_length", data["max_length"], 16),
    ]:
        if not isinstance(value, int) or value < least:
            errors.append(f"{key}={value!r} must be an integer >= {least}")
    if data["overflow"] not in OVERFLOW_MODES:
        errors.append(f"data.overflow={data['overflow']!r} must be one of {list(OVERFLOW_MODES)}")
    adapter_dir = plain["adapter_dir"]
    if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
        errors.append(
            f"adapter_dir={adapter_dir!r} holds no adapter_config.json "
            "(expected a folder written by save_adapter, e.g. a training run's adapter/)"
        )
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Evaluate as ``cfg`` says and write ``eval.json`` and ``eval.md`` into ``run_dir``."""
    from loralab.adapters import load_adapter
    from loralab.evaluation.predict import predict_split
    from loralab.evaluation.report import summarize, to_markdown
    from loralab.models import load_model
    from loralab.tasks import build_task
    from loralab.tasks.sources import DataError

    started = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
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
    model, tokenizer = load_model(resolved["model"])
    if cfg.adapter_dir is not None:
        load_adapter(model, cfg.adapter_dir)
    results, dropped = predict_split(
        model,
        tokenizer,
        task,
        cfg.split,
        cfg.mode,
        resolved["data"],
        cfg.max_new_tokens,
        progress=True,
    )
    summary = summarize(results, dropped)
    adapter = cfg.adapter_dir or "base model"
    title = f"{task.name}/{cfg.split}, {cfg.mode} mode, {resolved['model']['name']} + {adapter}"
    table = to_markdown(summary, title)
    run_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "config": resolved,
        "summary": summary,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "records": results,
    }
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    (run_dir / "eval.md").write_text(table)
    return {"summary": summary, "table": table, "run_dir": str(run_dir)}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    mark_task_started()
    try:
        validate_eval_config(cfg)
    except ConfigError as err:
        print(f"loralab-eval: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    from loralab.adapters.io import AdapterFileError
    from loralab.tasks.sources import DataError

    try:
        outcome = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (DataError, AdapterFileError) as err:  # each names the file (record, field, tensor)
        print(f"loralab-eval: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    print(outcome["table"])
    print(f"written: {outcome['run_dir']}/eval.json, eval.md")


def main() -> None:
    """Console-script entry point. Exit codes: 0 done, 1 unexpected error, 2 bad config or
    input (also Hydra's own: unknown option or key)."""
    run_entry_point(_hydra_main)


if __name__ == "__main__":
    main()
