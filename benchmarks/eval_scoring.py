"""Whole-option scoring (the text answer form, cloze mode) against the label form, and against
scoring each option as its own sequence (how options were scored before).

    python -m benchmarks.eval_scoring            # SmolLM2-135M, ScienceQA test: a few minutes
    python -m benchmarks.eval_scoring --quick    # the tiny test model on the demo quiz: seconds

The same questions (``--questions``, a seeded sample of the test split) are encoded in both
answer forms (``task.answer_form``) and batched as loralab-eval batches them (16 questions,
sorted by length). Three steps, each scoring every question once, are timed in interleaved
rounds (`measure.interleave`):

- ``label``: score mode in the label form (one pass; the decision token's logits);
- ``text``: score mode in the text form, which is cloze mode: each context encoded once and
  every option continued from its cached keys and values;
- ``text_old``: the text form as it was scored before: each option its own prompt+option
  sequence (kept here as the baseline).

Target: text <= 1.5 x label. Also reported: text_old / text, and that text and text_old agree
(the same picks; the largest difference in mean log-probability per token). Then one
`predict_split` of the text form over the whole test split (tokenisation and batching
included, as loralab-eval runs it; loading the model aside), its time per question
extrapolated to the 2,224 text-only problems of ScienceQA's official test split.

Precision: loralab-eval's ``precision=auto`` unless ``--precision`` says otherwise. One CPU
thread and process CPU time by default, as `benchmarks.train_step` (on a small shared machine
two threads drown every ratio in noise). Writes ``<out>/eval_scoring[-quick].json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks import measure, report
from loralab.cli.precision import forward_context, resolve_precision
from loralab.data.datamodule import TaskDataModule
from loralab.data.encoding import IGNORE_INDEX, Encoded, pad_right
from loralab.evaluation.likelihood import option_loglikelihoods
from loralab.evaluation.predict import predict_split
from loralab.evaluation.scoring import answer_logits, best_options, choose_options
from loralab.models import load_model
from loralab.tasks import build_task

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SCIENCEQA_TEST_TEXT_ONLY = 2224  # text-only problems of the official ScienceQA test split
EVAL_BATCH = 16  # loralab-eval's data.eval_batch_size
RATIOS = (
    report.Ratio("text form / label form", "text", "label", 1.5),
    report.Ratio("text form before / now", "text_old", "text"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.eval_scoring",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="the tiny model on the demo quiz")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data root")
    parser.add_argument("--questions", type=int, default=None, help="timed (64; quick 16)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "32-true", "bf16-mixed"),
        help="as loralab-eval's",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--clock", default="cpu", choices=measure.CLOCKS)
    parser.add_argument("--min-rounds", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=None, help="default 8 (quick: 2)")
    parser.add_argument("--budget-s", type=float, default=None, help="rounds (240; quick 20)")
    parser.add_argument("--no-whole-split", dest="whole_split", action="store_false")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for key, full, quick in (
        ("questions", 64, 16),
        ("max_rounds", 8, 2),
        ("budget_s", 240.0, 20.0),
    ):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.min_rounds = min(args.min_rounds, args.max_rounds)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    began = time.perf_counter()
    torch.set_num_threads(args.threads)
    model_cfg, task_cfg = _configs(args)
    model, tokenizer = load_model(model_cfg)
    precision = resolve_precision({"precision": args.precision, "accelerator": "cpu"}, model)
    data = {"max_length": 256, "overflow": "truncate", "eval_batch_size": EVAL_BATCH}
    sample = dict(task_cfg, max_examples={"train": 0, "validation": 0, "test": args.questions})
    label, text = (_batches(sample, form, tokenizer, data) for form in ("label", "text"))
    old = [(_old_sequences(items, tokenizer.pad_token_id), batch) for items, batch in text]
    steps = {
        "label": lambda: [choose_options(model, batch) for _, batch in label],
        "text": lambda: [choose_options(model, batch) for _, batch in text],
        "text_old": lambda: [best_options(_old_means(model, seqs), batch) for seqs, batch in old],
    }
    questions = sum(len(items) for items, _ in text)
    results = {"meta": _meta(args, model_cfg, task_cfg, precision) | {"questions": questions}}
    with torch.no_grad(), forward_context(precision, torch.device("cpu")):
        results["agreement"] = _agreement(model, old)
        timing = measure.interleave(
            steps,
            track=[(r.numerator, r.denominator) for r in RATIOS],
            min_rounds=args.min_rounds,
            max_rounds=args.max_rounds,
            budget_s=args.budget_s,
            clock=args.clock,
            log=_log,
        )
        if args.whole_split:
            results["whole_split"] = _whole_split(model, tokenizer, task_cfg, data)
    medians = {name: timing.median(name) for name in steps}
    results["steps"] = {
        name: {"median_s": medians[name], "per_question_ms": 1000 * medians[name] / questions}
        | {"times_s": timing.times[name], "wall_s": timing.wall[name]}
        for name in steps
    }
    results["timing"] = {"rounds": timing.rounds, "stopped": timing.stopped, "clock": timing.clock}
    results["ratios"] = report.ratio_rows(RATIOS, medians)
    results["meta"]["load_average_end"] = measure.load_average()
    results["elapsed_s"] = time.perf_counter() - began
    path = args.out / f"eval_scoring{'-quick' if args.quick else ''}.json"
    results["json"] = str(path)
    report.write_json(results, path)
    print(render(results))
    print(f"wrote {path}")
    return results


def _configs(args) -> tuple[dict, dict]:
    """The model and task configs loralab-eval composes (the task's test split)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from loralab import CONF_DIR
    from loralab.cli.resolvers import register_resolvers

    if args.quick:
        overrides = ["model=tiny_llama", "task=demo"]
    else:
        source = args.data.resolve() / "scienceqa" / "hf_sample"
        if not source.is_dir():
            raise SystemExit(f"{source} is absent: pass --data (the shared data root) or --quick")
        overrides = ["model=smollm2_135m", "task=scienceqa", f"task.source={source}"]
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("eval", overrides), resolve=True)
    return cfg["model"], cfg["task"]


def _batches(task_cfg: dict, form: str, tokenizer, data: dict) -> list[tuple[list, dict]]:
    """(items, batch) per batch of the test split in ``form``, as `predict_split` forms them."""
    task = build_task(dict(task_cfg, answer_form=form), splits=("test",))
    datamodule = TaskDataModule(task, tokenizer, dict(data, batch_size=EVAL_BATCH, seed=0))
    datamodule.setup()
    items = sorted(datamodule.encoded["test"], key=lambda item: len(item.example.input_ids))
    chunks = [items[i : i + EVAL_BATCH] for i in range(0, len(items), EVAL_BATCH)]
    return [(chunk, datamodule.collate(chunk)) for chunk in chunks]


def _old_sequences(items: list, pad_id: int) -> dict[str, torch.Tensor]:
    """Every option of ``items`` as its own context+option sequence, the option labelled."""
    sequences = [
        Encoded(list(o.context + o.tokens), [IGNORE_INDEX] * len(o.context) + list(o.tokens), False)
        for item in items
        for o in item.options
    ]
    return pad_right(sequences, pad_id)


def _old_means(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean log-probability per option token, one whole sequence per option (the old path)."""
    logits, targets, counts = answer_logits(model, batch)
    log_probs = -F.cross_entropy(logits.float(), targets, reduction="none")
    rows = torch.arange(len(counts)).repeat_interleave(counts)
    return torch.zeros(len(counts)).index_add(0, rows, log_probs) / counts


def _agreement(model, old: list) -> dict:
    """Whether the text form's picks and scores equal the old path's (an untimed pass)."""
    same, total, largest = 0, 0, 0.0
    for sequences, batch in old:
        scores = option_loglikelihoods(model, batch)
        means, before = scores.loglik / scores.tokens, _old_means(model, sequences)
        largest = max(largest, float((means - before).abs().max()))
        same += int((best_options(means, batch) == best_options(before, batch)).sum())
        total += len(batch["gold"])
    return {"same_picks": same, "questions": total, "max_abs_mean_logprob_diff": largest}


def _whole_split(model, tokenizer, task_cfg: dict, data: dict) -> dict:
    """One `predict_split` of the whole test split per answer form, extrapolated to the
    official ScienceQA test split's text-only size."""
    scale, runs = SCIENCEQA_TEST_TEXT_ONLY, {}
    for form in ("text", "label"):
        task = build_task(dict(task_cfg, answer_form=form), splits=("test",))
        began, began_cpu = time.perf_counter(), time.process_time()
        results, _ = predict_split(model, tokenizer, task, "test", "score", data)
        wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        runs[form] = {
            "questions": len(results),
            "accuracy": sum(r["correct"] for r in results) / len(results),
            "wall_s": wall,
            "cpu_s": cpu,
            f"extrapolated_{scale}_wall_s": wall * scale / len(results),
            f"extrapolated_{scale}_cpu_s": cpu * scale / len(results),
        }
    return runs


def _meta(args, model_cfg: dict, task_cfg: dict, precision: str) -> dict:
    return {
        "device_name": measure.cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": model_cfg["name"],
        "task": task_cfg["name"],
        "source": str(task_cfg["source"]),
        "eval_batch_size": EVAL_BATCH,
        "precision": precision,
        "clock": args.clock,
        "quick": args.quick,
        "argv": sys.argv[1:],
        "load_average_start": measure.load_average(),
    }


def render(results: dict) -> str:
    meta, agreement = results["meta"], results["agreement"]
    lines = [
        f"loralab eval-scoring benchmark: {meta['device_name']}, {meta['threads']} thread(s), "
        f"{meta['precision']}, torch {meta['torch']}",
        f"{meta['model']} on {meta['task']} test, {meta['questions']} questions in batches of "
        f"{meta['eval_batch_size']}; medians of {results['timing']['rounds']} interleaved "
        f"rounds ({results['timing']['clock']} time, stopped: {results['timing']['stopped']}); "
        f"load average {meta['load_average_start']} -> {meta['load_average_end']}",
        "",
        "| step | all questions s | per question ms |",
        "|---|---:|---:|",
    ]
    for name, step in results["steps"].items():
        lines.append(f"| {name} | {step['median_s']:.2f} | {step['per_question_ms']:.1f} |")
    lines += ["", "| ratio | value | target |", "|---|---:|---|"]
    for row in results["ratios"]:
        verdict = "" if row["pass"] is None else (" PASS" if row["pass"] else " FAIL")
        lines.append(f"| {row['label']} | {row['value']:.3f} | {row['target'] or ''}{verdict} |")
    lines.append(
        f"\ntext form vs before: same pick on {agreement['same_picks']}/{agreement['questions']} "
        f"questions, mean log-probability per token within "
        f"{agreement['max_abs_mean_logprob_diff']:.2g}"
    )
    n = SCIENCEQA_TEST_TEXT_ONLY
    for form, run in results.get("whole_split", {}).items():
        lines.append(
            f"predict_split, {form} form, all {run['questions']} test questions: "
            f"{run['wall_s']:.1f} s wall ({run['cpu_s']:.1f} s CPU), accuracy "
            f"{run['accuracy']:.3f}; extrapolated to {n} questions: "
            f"{run[f'extrapolated_{n}_wall_s'] / 60:.1f} min wall "
            f"({run[f'extrapolated_{n}_cpu_s'] / 60:.1f} min CPU)"
        )
    return "\n".join(lines)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
