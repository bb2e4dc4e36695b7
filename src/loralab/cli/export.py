"""``loralab-export``: a run's final adapter, or any of its step checkpoints, as an adapter folder
(PEFT's format for LoRA and MoSLoRA, loralab's own for MoE-LoRA), or merged into a full model.

    loralab-export RUN_DIR [--checkpoint last|stepN|N|PATH] [--out DIR] [--merge]
                           [--format peft|loralab]

The run's model and adapter come from ``RUN_DIR/.hydra/config.yaml``; the weights from
``RUN_DIR/adapter/`` (default) or from a checkpoint in ``RUN_DIR/checkpoints/`` (read with
``torch.load(weights_only=True)``: tensors only). The folder formats are described in
docs/extending.md ("Exporting adapters") and in loralab/adapters/io.py. Everything is checked
before anything is written; a refused command exits with code 2 and names the bad value and the
fix.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from loralab.cli.console import EXIT_BAD_INPUT

CONFIG_RECORD = Path(".hydra") / "config.yaml"
ADAPTER_DIR = "adapter"
EXPORT_DIR = "export"
NO_PEFT = "MoE-LoRA has no PEFT equivalent; use --format loralab"
NO_MERGE = (
    "MoE-LoRA cannot be merged into the base weights: its router picks experts per token, so "
    "its update is no fixed weight matrix; export the adapter instead (drop --merge; it is "
    "written in loralab's own format)"
)


class ExportError(ValueError):
    """A refused export: the message names the bad value and the fix."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="loralab-export",
        description="Write a run's adapter (the final one, or the weights of any step "
        "checkpoint) as an adapter folder, or merged into a full Hugging Face model for "
        "serving. LoRA and MoSLoRA folders are PEFT adapter folders "
        "(PeftModel.from_pretrained loads them; MoSLoRA's mixer folded into B) that loralab "
        "also reads back exactly; MoE-LoRA keeps loralab's own format (PEFT has no "
        "equivalent). See docs/extending.md, 'Exporting adapters'.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a loralab-train run folder")
    parser.add_argument(
        "--checkpoint",
        metavar="last|stepN|N|PATH",
        help="export the weights of this checkpoint instead of RUN_DIR/adapter: 'last' "
        "(checkpoints/last.ckpt), 'step40' or '40' (checkpoints/step40.ckpt), or a .ckpt path",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="the folder to write (must not exist or be empty); default "
        "RUN_DIR/export/<adapter|stepN>-<peft|loralab|merged>",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="write a merged full model (save_pretrained + tokenizer, W = W0 + s B M A) for "
        "serving instead of an adapter folder; LoRA and MoSLoRA only",
    )
    parser.add_argument(
        "--format",
        choices=("peft", "loralab"),
        help="adapter folder format: peft (default for LoRA and MoSLoRA: PEFT's files plus "
        "loralab's exact tensors) or loralab (loralab's own files only; the default, and the "
        "only choice, for MoE-LoRA)",
    )
    args = parser.parse_args(argv)
    try:
        out, what = export(args.run_dir, args.checkpoint, args.out, args.merge, args.format)
    except ExportError as err:
        print(f"loralab-export: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"loralab-export: wrote {what} to {out}")
    return 0


def export(
    run_dir: Path,
    checkpoint: str | None = None,
    out: Path | None = None,
    merge: bool = False,
    fmt: str | None = None,
) -> tuple[Path, str]:
    """Do what ``loralab-export`` does; returns the folder written and what it holds."""
    from loralab.adapters.io import (
        AdapterFileError,
        default_format,
        load_adapter,
        load_adapter_tensors,
        merge_adapters,
        save_adapter,
    )

    run_dir = Path(run_dir)
    config, adapter_cfg = _run_config(run_dir)
    kind = adapter_cfg.kind
    if merge and fmt is not None:
        raise ExportError(
            f"--format {fmt} applies to adapter folders, and --merge writes a full model: "
            "give one of them"
        )
    if merge and kind not in ("lora", "moslora"):
        raise ExportError(NO_MERGE if kind == "moe_lora" else _no_merge_custom(kind))
    fmt = fmt or default_format(kind)
    if fmt == "peft" and kind not in ("lora", "moslora"):
        raise ExportError(
            NO_PEFT
            if kind == "moe_lora"
            else f"adapter kind {kind!r} has no PEFT equivalent; use --format loralab"
        )
    if checkpoint is None:
        source, tensors, label = run_dir / ADAPTER_DIR, None, ADAPTER_DIR
        if not (source / "adapter_config.json").is_file():
            raise ExportError(
                f"{source} holds no adapter (the run did not finish); export a checkpoint "
                "instead: --checkpoint last"
            )
    else:
        source, tensors, step = _checkpoint_tensors(run_dir, checkpoint)
        label = "checkpoint" if step is None else f"step{step}"
    out = out or run_dir / EXPORT_DIR / f"{label}-{'merged' if merge else fmt}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {out} exists and is not empty; remove it or choose another --out")

    from loralab.adapters import inject_adapters
    from loralab.models import load_model

    model, tokenizer = load_model(config["model"])
    try:
        if tensors is None:
            load_adapter(model, source)
        else:
            inject_adapters(model, adapter_cfg)
            load_adapter_tensors(model, tensors, source)
    except AdapterFileError as err:
        raise ExportError(str(err)) from None
    model.eval()
    if merge:
        merged = merge_adapters(model)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return out, f"a merged {kind} model ({len(merged)} layers merged, from {source})"
    save_adapter(model, out, adapter_cfg, format=fmt)
    return out, f"a {kind} adapter in {fmt} format (from {source})"


def _run_config(run_dir: Path):
    """The run's resolved config (model and adapter sections) and its AdapterConfig, built as
    loralab-train builds it."""
    from omegaconf import OmegaConf

    from loralab.adapters import AdapterConfig
    from loralab.cli.plugins import import_plugins
    from loralab.cli.resolvers import register_resolvers

    record = run_dir / CONFIG_RECORD
    if not record.is_file():
        raise ExportError(
            f"RUN_DIR {run_dir} holds no {CONFIG_RECORD}: pass the folder loralab-train wrote "
            "(its hydra.run.dir)"
        )
    register_resolvers()  # the record keeps the config's interpolations
    try:
        cfg = OmegaConf.load(record)
        import_plugins(cfg.get("plugins"))  # a kind of the user's own is registered there
        config = {
            key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "adapter")
        }
        adapter = dict(config["adapter"])
        if adapter.get("num_experts", 1) > 1:  # the run's switch, as loralab-train sets it
            adapter["gate_rescale"] = _gate_rescale(cfg)
        return config, AdapterConfig.from_mapping(adapter)
    except Exception as err:  # a damaged record: name the file and what is wrong
        raise ExportError(f"{record}: {err}") from None


def _gate_rescale(cfg) -> bool:
    from omegaconf import OmegaConf

    from loralab.optim import OptimizerConfig

    try:
        resolved = OmegaConf.to_container(cfg.optimizer, resolve=True)
        return OptimizerConfig.from_mapping(resolved).gate_rescale
    except Exception:  # only the backward uses it; an export never trains
        return False


def _checkpoint_tensors(run_dir: Path, checkpoint: str):
    """(path, adapter tensors under our keys, global step) of the checkpoint `checkpoint`
    names: ``last``, ``stepN`` / ``N`` (the checkpoint in RUN_DIR/checkpoints holding global
    step N) or a path."""
    from loralab.runs.checkpoints import CHECKPOINT_DIR, LAST

    folder = run_dir / CHECKPOINT_DIR
    step = re.fullmatch(r"(?:step\s*=?\s*)?(\d+)", checkpoint.strip())
    if step is not None:
        path, state = _at_step(folder, int(step.group(1)), checkpoint)
    else:
        path = folder / LAST if checkpoint == "last" else Path(checkpoint)
        if not path.is_file():
            raise ExportError(
                f"--checkpoint {checkpoint}: no checkpoint file {path}; {_holdings(folder)}"
            )
        state = _read(path, checkpoint)
    try:
        stored = state["state_dict"]
        tensors = {key.removeprefix("model."): value for key, value in stored.items()}
    except (KeyError, TypeError, AttributeError) as err:
        raise ExportError(
            f"--checkpoint {checkpoint}: {path} is no loralab checkpoint (no state_dict: {err})"
        ) from None
    return path, tensors, state.get("global_step")


def _read(path: Path, checkpoint: str) -> dict:
    from loralab.runs.checkpoints import safe_load

    try:
        state = safe_load(path)
    except Exception as err:  # truncated, not a torch file, or pickled code
        raise ExportError(
            f"--checkpoint {checkpoint}: {path} cannot be read ({str(err).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict):
        raise ExportError(f"--checkpoint {checkpoint}: {path} is no loralab checkpoint")
    return state


def _at_step(folder: Path, step: int, checkpoint: str) -> tuple[Path, dict]:
    """The checkpoint in `folder` whose global step is `step`, found by the step it holds (a
    file's name can give another number than the step it holds); stepN.ckpt before
    last.ckpt."""
    steps = {}
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: p.name == "last.ckpt"):
        try:
            state = _read(path, checkpoint)
        except ExportError:
            continue  # a damaged file: listed among the others without a step
        steps[path] = state.get("global_step")
        if steps[path] == step:
            return path, state
    raise ExportError(
        f"--checkpoint {checkpoint}: no checkpoint holds step {step}; "
        + (
            f"{folder} holds " + ", ".join(f"{p.name} (step {s})" for p, s in steps.items())
            if steps
            else _holdings(folder)
        )
    )


def _holdings(folder: Path) -> str:
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    if found:
        return f"{folder} holds {', '.join(found)}"
    return f"{folder} holds none (give a .ckpt path)"


def _no_merge_custom(kind: str) -> str:
    return (
        f"adapter kind {kind!r} cannot be merged: only lora and moslora are a fixed low-rank "
        "update; export the adapter instead (drop --merge)"
    )


if __name__ == "__main__":
    sys.exit(main())
