"""End to end through the real console script: outputs, offline W&B run, fail-fast config errors."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from loralab import CONF_DIR
from loralab.cli.figures import main as figures
from loralab.runs.wandb_offline import find_run_file, read_history
from tests.helpers import run_cli


def train_cli(args, tmp_path, **env):
    return run_cli(
        "loralab.cli.train", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"), **env
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    run_dir = tmp / "run"
    done = train_cli(
        [
            "model=tiny_llama",
            "task=demo",
            "trainer.max_steps=20",
            "trainer.val_check_interval=10",
            f"hydra.run.dir={run_dir}",
        ],
        tmp,
        WANDB_DIR=str(tmp / "wandb-default"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done.stdout, done.stderr


def test_tiny_run_writes_every_output(tiny_run):
    run_dir, stdout, _ = tiny_run
    metrics = pd.read_csv(run_dir / "metrics.csv")
    train_rows = metrics.dropna(subset=["train/loss"])
    assert train_rows["step"].tolist() == list(range(20))
    assert metrics.dropna(subset=["val/acc"])["step"].tolist() == [0, 10, 20]
    assert metrics["test/acc"].notna().sum() == 2  # before and after training
    assert (run_dir / "curves.png").stat().st_size > 10_000
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["kind"] == "moe_lora" and config["gate_rescale"] is True
    tensors = load_file(run_dir / "adapter" / "adapter.safetensors")
    assert any("lora_A" in k for k in tensors) and any("router" in k for k in tensors)
    assert not any("base" in k for k in tensors), "frozen base weights leaked into adapter file"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 20
    assert "test accuracy after" in stdout and str(run_dir) in stdout


def test_offline_wandb_run_holds_logged_metrics(tiny_run):
    run_dir, *_ = tiny_run
    rows = read_history(find_run_file(run_dir))
    keys = set().union(*rows)
    assert {"train/loss", "val/loss", "val/acc", "test/acc", "router/entropy"} <= keys
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    csv_losses = pd.read_csv(run_dir / "metrics.csv")["train/loss"].dropna().tolist()
    assert losses == pytest.approx(csv_losses, rel=1e-6)


def test_console_output_is_quiet_and_counts_steps(tiny_run):
    _, stdout, stderr = tiny_run
    printed = stdout + stderr
    assert "GPU available: False" in printed  # Lightning's INFO lines still come through...
    assert printed.count("GPU available: False") == 1  # ...once, not also bare as "INFO: ..."
    assert "INFO: " not in printed
    assert "Tip:" not in printed and "litlogger" not in printed and "litmodels" not in printed
    assert "anonymous setting" not in printed
    assert "Training" in printed and "20/20" in printed  # optimizer steps of max_steps
    # output to a pipe, not a terminal: a progress line every twentieth of the run
    lines = [line for line in printed.splitlines() if "Training: step " in line]
    assert [line.split("Training: step ")[1].split(",")[0] for line in lines] == [
        f"{step}/20" for step in range(1, 21)
    ]
    assert "steps/s" in lines[-1] and "0m00s left" in lines[-1]
    assert "Epoch" not in printed and "/-2" not in printed


def test_help_lists_groups(tmp_path):
    done = train_cli(["--help"], tmp_path)
    assert done.returncode == 0
    for group in ["model", "adapter", "optimizer", "task", "trainer", "logger", "experiment"]:
        assert f"{group}:" in done.stdout
    assert "moe_lora" in done.stdout and "gradamw" in done.stdout


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("adapter.rank=0", "adapter.rank=0"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("adapter.target_modules=[nonexistent_proj]", "nonexistent_proj"),
        ("adapter.top_k=30", "adapter.top_k=30"),
        ("data.batch_size=0", "data.batch_size=0"),
        ("trainer.val_check_interval=0", "trainer.val_check_interval=0"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0"),
        ("trainer.precision=fp8", "trainer.precision='fp8'"),
        ("trainer.devices=0", "trainer.devices=0"),
        ("trainer.accelerator=tpu", "trainer.accelerator='tpu'"),
        ("task.max_examples.train=0", "task.max_examples.train=0"),
    ],
)
def test_bad_values_fail_before_any_model_loads(tmp_path, override, fragment):
    """Default model (the embedded one): had it started loading, the cache would be filled."""
    done = train_cli([override], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert fragment in done.stderr
    assert not (tmp_path / "cache").exists()


def test_unknown_option_lists_the_allowed_ones(tmp_path):
    done = train_cli(["adapter=nope"], tmp_path)
    assert done.returncode != 0
    assert "nope" in done.stderr and "moe_lora" in done.stderr
    assert not (tmp_path / "cache").exists()


def test_unknown_key_is_refused(tmp_path):
    done = train_cli(["adapter.rnak=4"], tmp_path)
    assert done.returncode != 0 and "rnak" in done.stderr


def curves_table_rows(accuracy_md) -> list[str]:
    """The rows of accuracy.md's table from the logged curves (after its header)."""
    text = accuracy_md.read_text().split("From the logged curves")[1]
    return [line for line in text.splitlines() if line.startswith("|")][2:]


def test_figures_cli_draws_runs_and_table(tiny_run, tmp_path):
    run_dir, *_ = tiny_run
    figures([str(run_dir), "--out", str(tmp_path / "fig")])
    for stem in ("runs", "train_loss"):
        assert (tmp_path / "fig" / f"{stem}.png").stat().st_size > 10_000
        assert (tmp_path / "fig" / f"{stem}.pdf").is_file()
    table = (tmp_path / "fig" / "accuracy.md").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{100 * summary['test_acc_after']:.1f}" in table
    losses = pd.read_csv(run_dir / "metrics.csv")["train/loss"].dropna().tolist()
    assert len(losses) == 20 and f"| {sum(losses) / 20:.3f} |" in table  # TAIL_STEPS = 20
    for name in ("runs.csv", "claims.md"):  # the run's per-question records, read back
        assert (tmp_path / "fig" / name).is_file()
    assert "demo, label answer form, tiny_llama, 20 steps, 100 test questions" in table


def test_figure_curves_smooth_each_run_then_take_mean_and_spread():
    from loralab.cli.figures import curve

    a = pd.DataFrame({"step": [0, 1, 2, 3], "train/loss": [4.0, 2.0, 6.0, 0.0]})
    b = pd.DataFrame({"step": [0, 1, 2, 3], "train/loss": [2.0, 2.0, 2.0, 2.0]})
    stats = curve([a, b], "train/loss", smooth=2)
    assert stats["mean"].tolist() == [3.0, 2.5, 3.0, 2.5]  # a smoothed: 4, 3, 4, 3
    assert stats["min"].tolist() == [2.0] * 4 and stats["max"].tolist() == [4.0, 3.0, 4.0, 3.0]


def test_accuracy_table_reports_gain_generate_accuracy_and_decision_loss():
    """Per group, mean ± std over seeds of each column, from two hand-made seeds."""
    from loralab.cli.figures import accuracy_table

    def seed(before, after, generated, decision):
        frame = pd.DataFrame(
            {
                "step": [0, 10, 20],
                "train/loss": [1.0, 0.5, 0.5],
                "test/gen_acc": [0.1, None, generated],
                "val/decision_loss": [None, 2.0, decision],
            }
        )
        return "run-s0", frame, {"test_acc_before": before, "test_acc_after": after}

    table = accuracy_table({"run": [seed(0.40, 0.50, 0.30, 1.0), seed(0.40, 0.60, 0.50, 2.0)]})
    header, _, row = table.splitlines()
    assert "gain" in header and "generate acc after" in header and "val decision loss" in header
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "run",
        "2",
        "40.0 ± 0.0",
        "55.0 ± 7.1",  # the sample standard deviation over seeds
        "15.0 ± 7.1",
        "10.0 ± 0.0",  # the step-0 generate accuracy
        "40.0 ± 14.1",
        "1.500 ± 0.707",
        "0.667 ± 0.000",
        "20",
    ]


def test_runs_with_one_name_and_seed_are_not_counted_as_seeds(capsys):
    """Two trials of a learning-rate search share the name ...-s0: two groups of one seed."""
    from loralab.cli.figures import group_by_seed

    frame = pd.DataFrame({"step": [0], "train/loss": [1.0]})
    runs = [
        ("obqa-lora-sgd-s0", frame, {"run_dir": "/runs/lr=0.1"}),
        ("obqa-lora-sgd-s0", frame, {"run_dir": "/runs/lr=0.01"}),
        ("obqa-lora-adamw-s0", frame, {}),
        ("obqa-lora-adamw-s1", frame, {}),
    ]
    groups = group_by_seed(runs)
    assert {k: len(v) for k, v in groups.items()} == {
        "obqa-lora-sgd [lr=0.1]": 1,
        "obqa-lora-sgd [lr=0.01]": 1,
        "obqa-lora-adamw": 2,
    }
    assert "obqa-lora-sgd-s0" in capsys.readouterr().err


def test_figures_cli_rejects_a_folder_without_metrics(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "loralab.cli.figures", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "no metrics.csv" in done.stderr


def test_figures_average_seeds_and_read_offline_wandb_runs(tiny_run, tmp_path):
    """Two seeds of one configuration, one of them with only its offline W&B run left."""
    import shutil

    from loralab.cli.figures import group_by_seed, load_run

    run_dir, *_ = tiny_run
    seed1 = tmp_path / "seed1"
    shutil.copytree(run_dir, seed1)
    summary = json.loads((seed1 / "summary.json").read_text())
    summary.update(run_name=summary["run_name"][: -len("-s0")] + "-s1", test_acc_after=1.0)
    (seed1 / "summary.json").write_text(json.dumps(summary))
    (seed1 / "metrics.csv").unlink()
    shutil.rmtree(seed1 / "predictions")  # no per-question records: the curves give the table

    name, frame, _ = load_run(seed1)
    losses = pd.read_csv(run_dir / "metrics.csv")["train/loss"].dropna().tolist()
    assert frame["train/loss"].dropna().tolist() == pytest.approx(losses, rel=1e-6)
    assert list(group_by_seed([load_run(run_dir), (name, frame, summary)])) == [name[:-3]]

    figures([str(run_dir), str(seed1), "--out", str(tmp_path / "fig")])
    row = curves_table_rows(tmp_path / "fig" / "accuracy.md")[0]
    after = json.loads((run_dir / "summary.json").read_text())["test_acc_after"]
    mean, std = 100 * (after + 1.0) / 2, 100 * abs(1.0 - after) / 2**0.5
    assert "| 2 |" in row and f"{mean:.1f} ± {std:.1f}" in row


def test_figures_notebook_runs_on_a_logged_run(tiny_run, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    run_dir, *_ = tiny_run
    notebook = nbformat.read(Path(__file__).parents[1] / "notebooks" / "figures.ipynb", 4)
    monkeypatch.setenv("LORALAB_RUN_DIRS", str(run_dir))  # the kernel inherits the environment
    monkeypatch.setenv("LORALAB_FIGURES_OUT", str(tmp_path / "nb"))
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    assert (tmp_path / "nb" / "runs.png").stat().st_size > 10_000
    assert (tmp_path / "nb" / "train_loss.png").stat().st_size > 10_000
    summary = json.loads((run_dir / "summary.json").read_text())
    table = (tmp_path / "nb" / "accuracy.md").read_text()
    assert f"{100 * summary['test_acc_after']:.1f}" in table
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_eval_help_is_loralab_evals_own(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "loralab.cli.evaluate", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "loralab-eval: accuracy of a saved adapter" in done.stdout
    assert "adapter_dir=null" in done.stdout and "mode=generate" in done.stdout
    # each setting with its help, generated from loralab.cli.settings.EvalSettings
    assert "  precision=model\n      model: the checkpoint's dtype" in done.stdout
    # the groups it lists are exactly the ones it takes: model and task, with every option
    conf = Path(CONF_DIR)
    for group in ("model", "task"):
        options = ", ".join(sorted(p.stem for p in (conf / group).glob("*.yaml")))
        assert f"{group}: {options}" in done.stdout
    assert "optimizer:" not in done.stdout and "trainer:" not in done.stdout


def test_offline_wandb_run_is_named_and_grouped_by_experiment_and_variant(tiny_run):
    """Dashboards group by job type (the experiment) and group (the variant, all seeds)."""
    from loralab.runs.wandb_offline import read_records

    run_dir, *_ = tiny_run
    runs = [
        r.run for r in read_records(find_run_file(run_dir)) if r.WhichOneof("record_type") == "run"
    ]
    assert runs, "no run record in the offline W&B file"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert runs[0].display_name == summary["run_name"] == "demo-moe_lora-gradamw-s0"
    assert runs[0].run_group == "demo-moe_lora-gradamw"
    assert runs[0].job_type == "default"  # no experiment: the defaults


def test_router_statistics_are_summaries_unless_asked_per_layer(tiny_run):
    run_dir, *_ = tiny_run
    columns = [c for c in pd.read_csv(run_dir / "metrics.csv").columns if c.startswith("router/")]
    assert sorted(columns) == ["router/dead_experts", "router/entropy", "router/load_imbalance"]


def test_router_statistics_only_at_their_steps(tiny_run):
    """Measured every evaluation.router_stats_every=10 steps, and only there: no stale copy of
    the last measurement at the steps between."""
    run_dir, *_ = tiny_run
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics.dropna(subset=["router/entropy"])["step"].tolist() == [0, 10]


def test_unwritable_checkpoint_folder_stops_the_run_before_the_model_loads(tmp_path):
    """A file where checkpoints/ must go (as a read-only disk would): exit 2 naming the path,
    before any model loads (the cache stays empty), not after training with the adapter lost."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("not a folder")
    done = train_cli(["model=tiny_llama", "task=demo", f"hydra.run.dir={run_dir}"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot write the run's checkpoints to {run_dir / 'checkpoints'}" in done.stderr
    assert not (run_dir / "metrics.csv").exists()


def test_examples_dropped_as_over_long_are_counted_in_the_summary(tmp_path):
    """data.overflow=drop leaves out what does not fit: the summary says how many, per split
    (demo prompts run 77-114 tokens of the tiny tokenizer; 100 keeps about half)."""
    run_dir = tmp_path / "run"
    args = ["model=tiny_llama", "logger=csv", "trainer.max_steps=2", "data.overflow=drop"]
    args += ["data.max_length=100", "task.max_examples.train=40", f"hydra.run.dir={run_dir}"]
    done = train_cli(args, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    dropped = json.loads((run_dir / "summary.json").read_text())["examples_dropped"]
    assert dropped["train"] > 0 and dropped["test"] > 0
    assert "over-long dropped" in done.stdout and f"train {dropped['train']}" in done.stdout


def test_a_gate_rescaled_optimizer_on_lora_sets_no_switch_without_a_router(tmp_path):
    """gRAdamW (the default) with plain LoRA: there is no gate to rescale, so the adapters are
    built without the switch and nothing warns that it has no effect."""
    args = ["experiment=smoke", "adapter=lora", "trainer.max_steps=2", "logger=csv"]
    done = train_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "has no effect" not in done.stderr
    saved = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert saved["gate_rescale"] is False and saved["kind"] == "lora"


def test_a_baseline_fills_the_before_of_runs_that_did_not_measure_it(tmp_path):
    """Grids skip the untrained model's evaluation (the same for every run); its loralab-eval
    folders give the table its before and gain columns."""
    from loralab.cli.figures import accuracy_table, load_baseline

    for mode, accuracy in (("score", 0.22), ("generate", 0.014)):
        (tmp_path / mode).mkdir()
        summary = {"overall": {"accuracy": accuracy}}
        config = {"mode": mode, "adapter_dir": None}
        (tmp_path / mode / "eval.json").write_text(
            json.dumps({"config": config, "summary": summary})
        )
    baseline = load_baseline([tmp_path / "score", tmp_path / "generate"])
    assert baseline == {"score": 0.22, "generate": 0.014}
    frame = pd.DataFrame({"step": [0, 99], "train/loss": [1.0, 0.5], "test/gen_acc": [None, 0.3]})
    runs = [("run-s0", frame, {"test_acc_before": None, "test_acc_after": 0.276})]
    cells = accuracy_table({"run": runs}, baseline).splitlines()[2].strip("|").split("|")
    assert [c.strip() for c in cells[2:7]] == [
        "22.0",  # one seed: no spread
        "27.6",
        "5.6",
        "1.4",
        "30.0",
    ]
    assert "n/a" in accuracy_table({"run": runs}).splitlines()[2]  # without it: unknown
    (tmp_path / "adapted").mkdir()
    adapted = {"config": {"mode": "score", "adapter_dir": "run/adapter"}, "summary": {}}
    (tmp_path / "adapted" / "eval.json").write_text(json.dumps(adapted))
    with pytest.raises(ValueError, match="the baseline is the untrained model"):
        load_baseline([tmp_path / "adapted"])


def test_a_run_eval_fills_the_after_a_run_did_not_log(tmp_path, capsys):
    """A grid run with evaluation.generate_every=0 logs no generate accuracy; loralab-eval on
    its adapter, in a folder inside the run, gives the table its generate column."""
    from loralab.cli.figures import main

    frame = pd.DataFrame({"step": [0, 1, 2], "train/loss": [2.0, 1.0, 0.5]})
    for seed, accuracy in ((0, 0.40), (1, 0.50)):
        run = tmp_path / f"run-s{seed}"
        (run / "gen").mkdir(parents=True)
        frame.to_csv(run / "metrics.csv", index=False)
        summary = {"run_name": f"run-s{seed}", "test_acc_before": 0.2, "test_acc_after": 0.6}
        (run / "summary.json").write_text(json.dumps(summary))
        result = {
            "config": {"mode": "generate", "adapter_dir": f"{run}/adapter"},
            "summary": {"overall": {"accuracy": accuracy}},
        }
        (run / "gen" / "eval.json").write_text(json.dumps(result))
    runs = [str(tmp_path / "run-s0"), str(tmp_path / "run-s1")]
    main([*runs, "--run-eval", "gen", "--out", str(tmp_path / "figs")])
    row = curves_table_rows(tmp_path / "figs" / "accuracy.md")[0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "run" and cells[3] == "60.0 ± 0.0" and cells[6] == "45.0 ± 7.1"
    main([*runs, "--out", str(tmp_path / "plain")])  # without --run-eval: not measured
    assert "n/a" in curves_table_rows(tmp_path / "plain" / "accuracy.md")[0]
    capsys.readouterr()
    (tmp_path / "run-s1" / "gen" / "eval.json").write_text(
        json.dumps({"config": {"mode": "generate", "adapter_dir": "other/adapter"}})
    )
    with pytest.raises(SystemExit) as stopped:
        main([*runs, "--run-eval", "gen", "--out", str(tmp_path / "figs")])
    assert stopped.value.code == 2
    assert "evaluates adapter other/adapter, not" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*runs, "--run-eval", "missing", "--out", str(tmp_path / "figs")])
    assert "has no missing/eval.json" in capsys.readouterr().err
    # a run with its own per-question test record needs no such folder: newer runs mix with
    # older ones, and only the ones without a record of their own must have it
    for run in runs:
        (Path(run) / "predictions").mkdir()
        line = {"id": "q1", "gold_index": 0, "picks": {"acc": 0}}
        (Path(run) / "predictions" / "test_step2.jsonl").write_text(json.dumps(line) + "\n")
    main([*runs, "--run-eval", "missing", "--out", str(tmp_path / "mixed")])
    assert (tmp_path / "mixed" / "runs.csv").is_file()
    said = capsys.readouterr().err  # said, not silent: a generate-mode folder would read n/a
    assert "--run-eval missing: 2 run(s) have no missing/eval.json" in said and runs[0] in said
    (Path(runs[1]) / "predictions" / "test_step2.jsonl").unlink()
    with pytest.raises(SystemExit):
        main([*runs, "--run-eval", "missing", "--out", str(tmp_path / "mixed")])
    assert f"{runs[1]} has no missing/eval.json" in capsys.readouterr().err


def test_figure_2s_accuracy_panel_is_generate_mode_test_accuracy():
    """The paper's Figure 2 draws generate-mode test accuracy; score-mode validation accuracy
    comes after it, and a panel no run logged is left out."""
    from loralab.cli.figures import figure2_panels

    logged = pd.DataFrame({"step": [0, 2], "train/loss": [1.0, 0.9], "val/acc": [0.2, 0.3]})
    generated = logged.assign(**{"test/gen_acc": [0.1, 0.4]})
    columns = [c for c, _ in figure2_panels({"a": [("run", generated, None)]})]
    assert columns == ["train/loss", "test/gen_acc", "val/acc"]
    assert "test/gen_acc" not in [c for c, _ in figure2_panels({"a": [("run", logged, None)]})]


def test_a_generate_baseline_starts_the_accuracy_curve_at_step_0():
    """A grid that skipped the untrained model's evaluation logs generate accuracy only after
    training; the loralab-eval baseline is its step 0, and a run's own step 0 is kept."""
    from loralab.cli.figures import curve, starting_at

    late = pd.DataFrame({"step": [0, 99], "train/loss": [2.0, 1.0], "test/gen_acc": [None, 0.4]})
    started = starting_at(late, "test/gen_acc", 0.1)
    assert curve([started], "test/gen_acc")["mean"].to_dict() == {0: 0.1, 99: 0.4}
    own = late.assign(**{"test/gen_acc": [0.3, 0.4]})
    assert curve([starting_at(own, "test/gen_acc", 0.1)], "test/gen_acc")["mean"][0] == 0.3
    assert starting_at(late, "test/gen_acc", None) is late
