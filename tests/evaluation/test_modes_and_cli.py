"""``score`` and ``generate`` agree on a model trained to answer the demo task; ``loralab-eval``
evaluates the saved adapter end to end and refuses bad configs before loading anything."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from loralab.adapters import load_adapter
from loralab.cli.train import run
from loralab.evaluation.predict import predict_split
from loralab.evaluation.report import summarize
from loralab.models import load_model
from loralab.tasks import build_task
from tests.helpers import compose_config, run_cli

# A real short training run of the tiny model; LoRA on lm_head too, so that the frozen random
# output layer does not cap how sharply it can learn the answer format. It then answers in the
# format (how well it picks letters varies with the demo templates; the modes must agree).
TRAIN = [
    "task=demo",
    "task.max_examples.train=1200",
    "task.max_examples.test=200",
    "model=tiny_llama",
    "adapter=lora",
    "adapter.target_modules=[all,lm_head]",
    "adapter.rank=16",
    "optimizer=adamw",
    "optimizer.lr=1e-2",
    "logger=csv",
    "trainer.precision=32-true",
    "trainer.max_steps=300",
    "trainer.val_check_interval=300",
    "checkpoint.every_n_steps=0",
    "evaluation.before_training=false",
]
EVAL_DATA = {"max_length": 256, "overflow": "truncate", "eval_batch_size": 32}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trained")
    cfg = compose_config(TRAIN)
    summary, _ = run(cfg, run_dir)
    return OmegaConf.to_container(cfg, resolve=True), summary["adapter_dir"], summary


def test_score_and_generate_agree(trained):
    cfg, adapter_dir, _ = trained
    model, tokenizer = load_model(cfg["model"])
    load_adapter(model, adapter_dir)
    task = build_task(cfg["task"], splits=("test",))
    outcome = {}
    for mode in ("score", "generate"):
        results, dropped = predict_split(model, tokenizer, task, "test", mode, EVAL_DATA, 10)
        outcome[mode] = (results, summarize(results, dropped)["overall"])
    score, generate = outcome["score"][1], outcome["generate"][1]
    assert generate["n"] == score["n"] == 200
    assert generate["unparsable"] <= 4, outcome["generate"][0][:3]  # it answers in the format
    assert abs(score["accuracy"] - generate["accuracy"]) <= 0.02
    same = sum(
        s["prediction"] == g["prediction"]
        for s, g in zip(outcome["score"][0], outcome["generate"][0], strict=True)
    )
    assert same >= 0.95 * 200  # the same answer record by record, not only the same accuracy


def eval_cli(args, tmp_path):
    return run_cli("loralab.cli.evaluate", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))


def test_eval_cli_writes_json_and_table(trained, tmp_path):
    _, adapter_dir, _ = trained
    run_dir = tmp_path / "eval"
    done = eval_cli(
        [
            "model=tiny_llama",
            "task=demo",
            "task.max_examples.test=40",
            f"adapter_dir={adapter_dir}",
            "mode=generate",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["summary"]["overall"]["n"] == 40 and len(report["records"]) == 40
    assert {"gold", "prediction", "correct", "output", "subject", "grade"} <= set(
        report["records"][0]
    )
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    for line, record in zip(map(json.loads, lines), report["records"], strict=True):
        assert line["output"] == record["output"] and line["parsed"] == record["prediction"]
        assert (line["picks"]["generate"] == line["gold_index"]) == record["correct"]
        assert "options" not in line  # no per-option scores in generate mode
    table = (run_dir / "eval.md").read_text()
    assert "| overall | 40 |" in table and "grade:" in table
    assert table.strip() in done.stdout
    assert "generate test" in done.stderr and "40/40" in done.stderr  # the progress bar
    assert "q/s" in done.stderr or "s/q" in done.stderr  # with its throughput


def test_eval_reproduces_the_runs_own_test_accuracy(trained, tmp_path):
    """Scored at the precision the run trained with (named in its summary), on the run's test
    split, loralab-eval gives the run's own final test accuracy (batches differ: one record of
    200 may flip on a near-tie), and names the device and precision it used."""
    _, adapter_dir, summary = trained
    run_dir = tmp_path / "eval"
    done = eval_cli(
        [
            *[arg for arg in TRAIN if arg.startswith(("task", "model="))],
            f"adapter_dir={adapter_dir}",
            f"precision={summary['precision']}",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["summary"]["overall"]["n"] == 200
    assert abs(report["summary"]["overall"]["accuracy"] - summary["test_acc_after"]) <= 1 / 200
    assert report["device"] == "cpu" and report["precision"] == "32-true"
    assert "(cpu, 32-true)" in (run_dir / "eval.md").read_text()


def test_forward_context_is_autocast_only_for_bf16_mixed():
    from loralab.cli.precision import forward_context

    layer, x, cpu = torch.nn.Linear(4, 4), torch.randn(2, 4), torch.device("cpu")
    with forward_context("bf16-mixed", cpu):
        assert layer(x).dtype == torch.bfloat16
    with forward_context("32-true", cpu):
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="16-mixed"):
        forward_context("16-mixed", cpu)


def test_eval_defaults_to_the_checkpoints_dtype_without_autocast():
    """loralab-eval's default precision is lm-evaluation-harness's: the weights' own dtype."""
    from loralab.cli.precision import forward_context, resolve_precision
    from tests.helpers import compose_config

    assert compose_config([], name="eval").precision == "model"
    layer, x, cpu = torch.nn.Linear(4, 4), torch.randn(2, 4), torch.device("cpu")
    chosen = resolve_precision({"precision": "model", "accelerator": "cpu"}, layer)
    assert chosen == "float32 (model dtype)"
    with forward_context(chosen, cpu):
        assert layer(x).dtype == torch.float32
    half = torch.nn.Linear(4, 4).to(torch.bfloat16)
    assert resolve_precision({"precision": "model"}, half) == "bfloat16 (model dtype)"


BAD = {
    "mode=beam": "mode='beam' must be one of ['score', 'generate', 'cloze', 'harness']",
    "split=dev": "split='dev' must be one of",
    "adapter_dir=/nonexistent/adapter": "adapter_dir='/nonexistent/adapter' holds no",
    "task.max_examples.test=-1": "task.max_examples.test=-1 must be",
    "max_new_tokens=0": "max_new_tokens=0 must be",
    "data.overflow=wrap": "data.overflow='wrap' must be one of",
    "precision=16-mixed": "precision='16-mixed' must be one of ['model', 'auto', '32-true', 'bf16-mixed']",
    "device=tpu": "device='tpu' must be one of ['auto', 'cpu', 'cuda']",
}


def test_bad_eval_config_exits_2_before_loading(tmp_path):
    """Every bad value is named at once; the default (embedded) model never starts loading
    (had it, the model cache would exist)."""
    done = eval_cli(list(BAD), tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    for fragment in BAD.values():
        assert fragment in done.stderr
    assert not (tmp_path / "cache").exists()


def test_eval_exits_2_on_an_unknown_key_and_on_a_non_finite_adapter(trained, tmp_path):
    """Hydra's own rejection of the command line is a bad input too (2, not 1); an adapter
    holding NaN weights is refused, naming the file, instead of scoring every answer "A"."""
    import shutil

    from safetensors.torch import load_file, save_file

    done = eval_cli(["model=tiny_llama", "nonexistent_key=1"], tmp_path)
    assert done.returncode == 2 and "nonexistent_key" in done.stderr
    _, adapter_dir, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(adapter_dir, broken)
    tensors = load_file(broken / "adapter.safetensors")
    key = next(k for k in tensors if k.endswith("lora_B"))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, broken / "adapter.safetensors")
    done = eval_cli(["model=tiny_llama", "task=demo", f"adapter_dir={broken}"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "non-finite weights" in done.stderr and str(broken) in done.stderr


def test_a_split_without_records_is_a_data_error(shared_data, tmp_path):
    from loralab.cli.evaluate import run as evaluate
    from loralab.tasks import DataError

    overrides = ["task=piqa", f"task.source={shared_data / 'commonsense'}", "split=train"]
    cfg = compose_config(overrides, name="eval")
    with pytest.raises(DataError, match="task 'piqa' has no train records"):
        evaluate(cfg, tmp_path)


def test_a_single_test_file_is_named_as_the_test_split(shared_data, tmp_path):
    """One file is the train split; the error says how to name its split, and the mapping
    `task.source={test: file}` then evaluates it."""
    import datasets

    from loralab.cli.evaluate import run as evaluate
    from loralab.tasks import DataError

    file = tmp_path / "problems_test.jsonl"
    hub = datasets.load_from_disk(str(shared_data / "scienceqa" / "hf_sample"))["test"]
    with open(file, "w") as handle:
        for row in hub.select(range(6)):
            handle.write(json.dumps({k: row[k] for k in ("question", "choices", "answer")}) + "\n")
    base = ["model=tiny_llama", "task=scienceqa", "split=test"]
    cfg = compose_config([*base, f"task.source={file}"], name="eval")
    with pytest.raises(DataError, match=r"name its split, e.g. 'task.source=\{test: "):
        evaluate(cfg, tmp_path / "a")
    cfg = compose_config([*base, f"task.source={{test: {file}}}"], name="eval")
    outcome = evaluate(cfg, tmp_path / "b")
    assert outcome["summary"]["overall"]["n"] == 6
