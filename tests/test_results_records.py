"""loralab-figures' evidence: runs.csv, claims.md and accuracy tables with intervals, from the
runs' per-question records; paired verdicts on a constructed grid whose answer is known, and on
real tiny runs, recomputed here from their predictions files."""

import csv
import json

import numpy as np
import yaml

from loralab.cli.figures import main as figures_main
from loralab.runs.claims import signed_points


def fake_run(
    folder, optimizer, seed, right, questions=300, before_right=100, task_of=None, gold_of=None
):
    """A run directory as loralab-train leaves it, with per-question records: its first
    ``right`` questions answered right after training, ``before_right`` before; each record
    names its task ``task_of(q)`` where given (a split that mixes tasks); two options, the
    right one ``gold_of(q)`` (default 0)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "predictions").mkdir()
    config = {
        "seed": seed,
        "adapter": {"kind": "moe_lora"},
        "optimizer": {"name": optimizer},
        "task": {"name": "arc_e", "answer_form": "text"},
        "model": {"name": "smollm2_135m", "pretrained": "HuggingFaceTB/SmolLM2-135M-Instruct"},
    }
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.csv").write_text("step,train/loss\n0,2.0\n9,1.0\n")
    name = f"arc_e-moe_lora-{optimizer}-s{seed}"
    summary = {"run_name": name, "steps": 10, "device": "test CPU (2 cores)", "commit": "abc1234"}
    (folder / "summary.json").write_text(json.dumps(summary))
    for step, count in ((0, before_right), (10, right)):
        lines = []
        for q in range(questions):
            gold = gold_of(q) if gold_of else 0
            pick = gold if q < count else 1 - gold
            picks = {"acc": pick, "acc_norm": pick, "acc_per_token": pick}
            row = {"id": f"q{q}", "gold_index": gold, "gold": "AB"[gold], "picks": picks}
            lines.append(json.dumps(row | ({"task": task_of(q)} if task_of else {})))
        (folder / "predictions" / f"test_step{step}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def figures_over(tmp_path, runs, *args, **run_options):
    """loralab-figures (with ``args``) over a fake run per (optimizer, seed, right) of ``runs``,
    each made with ``run_options``: its output folder."""
    dirs = [
        fake_run(tmp_path / f"{opt}-{seed}", opt, seed, right, **run_options)
        for opt, seed, right in runs
    ]
    out = tmp_path / "figs"
    figures_main([*map(str, dirs), "--out", str(out), *args])
    return out


def constructed_grid(tmp_path, counts: dict[str, int]):
    """loralab-figures over fake runs of each optimizer with seeds 0-2, the seed-s run answering
    the first ``counts[optimizer] + s`` questions right: (its output folder, claims.md)."""
    runs = [(opt, seed, count + seed) for opt, count in counts.items() for seed in (0, 1, 2)]
    out = figures_over(tmp_path, runs, "--experiment", "constructed")
    return out, (out / "claims.md").read_text()


def claim_cells(claims: str, claim: str, a: str, b: str) -> list[str]:
    """The cells of claims.md's one row for ``claim`` between optimizers a and b."""
    a = a if a in ("untrained", "most_common_answer") else f"arc_e-moe_lora-{a}"
    head = f"| {claim} | {a} | arc_e-moe_lora-{b} |"
    found = [line for line in claims.splitlines() if line.startswith(head)]
    assert len(found) == 1, claims
    return [cell.strip() for cell in found[0].strip("|").split("|")]


def test_a_constructed_grid_gets_the_verdicts_it_was_built_for(tmp_path):
    """RSGD answers 60 more of 300 questions than SGD on every seed (holds); gSGD 1 fewer
    than SGD (not resolved); gRSGD 60 fewer than RSGD (reversed)."""
    out, claims = constructed_grid(tmp_path, {"sgd": 150, "rsgd": 210, "gsgd": 149, "grsgd": 150})
    assert "arc_e, text answer form, HuggingFaceTB/SmolLM2-135M-Instruct, 10 steps, 300" in claims

    def row(a, b, claim):
        return claim_cells(claims, claim, a, b)

    riemann = row("sgd", "rsgd", "Riemannian preconditioning above plain")
    assert riemann[3:5] == ["3, 3", "+20.0"] and riemann[-1] == "holds"
    assert row("sgd", "gsgd", "gate rescaling above none")[-1] == "not resolved at this size"
    assert row("rsgd", "grsgd", "gate rescaling above none")[-1] == "reversed"
    assert (
        row("gsgd", "grsgd", "Riemannian preconditioning above plain")[-1]
        == "not resolved at this size"
    )
    trained = row("untrained", "sgd", "training above the untrained model")
    assert trained[3] == "1, 3" and trained[-1] == "holds"  # one untrained model for all seeds

    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {r["seed"] for r in rows} == {"0", "1", "2"}
    sgd0 = next(r for r in rows if r["optimizer"] == "sgd" and r["seed"] == "0")
    assert float(sgd0["acc_after"]) == 0.5 and float(sgd0["acc_before"]) == 100 / 300
    assert float(sgd0["acc_after_stderr"]) == np.sqrt(0.25 / 299)
    assert (sgd0["experiment"], sgd0["test_size"], sgd0["answer_form"]) == (
        "constructed",
        "300",
        "text",
    )
    assert (sgd0["device"], sgd0["commit"], sgd0["steps"]) == (
        "test CPU (2 cores)",
        "abc1234",
        "10",
    )

    with open(out / "questions.csv") as handle:  # what the claims are computed from
        questions = list(csv.DictReader(handle))
    assert len(questions) == 300 and "untrained/acc" in questions[0]
    for seed in (0, 1, 2):
        rsgd = sum(int(q[f"arc_e-moe_lora-rsgd/s{seed}/acc"]) for q in questions)
        sgd = sum(int(q[f"arc_e-moe_lora-sgd/s{seed}/acc"]) for q in questions)
        assert rsgd - sgd == 60

    accuracy = (out / "accuracy.md").read_text()
    line = next(x for x in accuracy.splitlines() if x.startswith("| arc_e-moe_lora-rsgd |"))
    assert "| 70.3 ± 0.3 [" in line  # mean ± sample std over seeds, then its 95 % interval


def test_per_task_md_splits_accuracy_and_each_claim_by_task(tmp_path):
    """Two tasks of 150 questions each: SGD gets all of t1 and none of t2, RSGD as well plus
    60 of t2 on every seed: the effect is +40 points on t2, nothing on t1, +20 pooled."""

    def task_of(q):
        return "t1" if q < 150 else "t2"

    runs = [(opt, seed, right) for opt, right in (("sgd", 150), ("rsgd", 210)) for seed in (0, 1)]
    out = figures_over(tmp_path, runs, task_of=task_of)
    lines = (out / "per_task.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| task |"))
    assert header == (
        "| task | questions | untrained | most common answer | arc_e-moe_lora-sgd (2 seeds) | "
        "arc_e-moe_lora-rsgd (2 seeds) | arc_e-moe_lora-rsgd − arc_e-moe_lora-sgd |"
    )
    rows = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ") for line in lines}
    t1, t2, pooled = rows["t1"], rows["t2"], rows["all"]
    assert t1[1] == t2[1] == "150" and pooled[1] == "300"
    assert t1[2].startswith("66.7 [") and t2[2] == "0.0 [0.0, 0.0]"  # one untrained model
    assert t1[3] == t2[3] == "100.0 [100.0, 100.0]"  # gold is always option 0
    assert t1[4] == "100.0 ± 0.0 [100.0, 100.0]" and t2[4] == "0.0 ± 0.0 [0.0, 0.0]"
    assert t1[6].strip() == "0.0 [0.0, 0.0]"
    assert t2[6].startswith("+40.0 [") and pooled[6].startswith("+20.0 [")
    low = float(t2[6].split("[")[1].split(",")[0])
    assert 0 < low < 40  # resolved on t2 alone, with a question-sampling interval

    (tmp_path / "one-task").mkdir()
    single = [fake_run(tmp_path / "one-task" / "sgd-0", "sgd", 0, 150)]
    figures_main([*map(str, single), "--out", str(out)])
    assert not (out / "per_task.md").exists()  # a single-task grid has none, the old one goes


def test_per_task_md_names_what_it_cannot_align_instead_of_mislabelling_it(tmp_path):
    """A group tested on other questions is left out and named; groups with different untrained
    records (say, two models) get no shared untrained column."""

    def task_of(q):
        return "t1" if q % 2 else "t2"

    sgd = fake_run(tmp_path / "sgd", "sgd", 0, 150, task_of=task_of)
    adamw = fake_run(tmp_path / "adamw", "adamw", 0, 150, questions=200, task_of=task_of)
    out = tmp_path / "figs"
    figures_main([str(sgd), str(adamw), "--out", str(out)])
    text = (out / "per_task.md").read_text()
    assert "Left out, tested on other questions: arc_e-moe_lora-adamw." in text
    assert "| all | 300 |" in text and "adamw (1 seed)" not in text

    other = fake_run(tmp_path / "adamw2", "adamw", 0, 150, before_right=50, task_of=task_of)
    figures_main([str(sgd), str(other), "--out", str(out)])
    text = (out / "per_task.md").read_text()
    assert "No untrained column" in text
    assert "| task | questions | most common answer | arc_e-moe_lora-sgd (1 seed) |" in text


def test_each_variant_is_compared_with_always_giving_the_most_common_answer(tmp_path):
    """Option 0 is right for 200 of 300 questions: always answering it scores 66.7%. A run right
    on 150 is below it (reversed), one right on 250 above it (holds); questions.csv holds the
    constant answer's outcomes and accuracy.md its accuracy."""

    def gold_of(q):
        return 0 if q < 200 else 1

    runs = [(opt, seed, right) for opt, right in (("sgd", 150), ("rsgd", 250)) for seed in (0, 1)]
    out = figures_over(tmp_path, runs, gold_of=gold_of)
    claims = (out / "claims.md").read_text()
    below = claim_cells(
        claims, "training above the most common answer", "most_common_answer", "sgd"
    )
    above = claim_cells(
        claims, "training above the most common answer", "most_common_answer", "rsgd"
    )
    assert "`most_common_answer`: always the option most often right" in claims  # defined
    assert below[3:5] == ["1, 2", "-16.7"] and below[-1] == "reversed"
    assert above[3:5] == ["1, 2", "+16.7"] and above[-1] == "holds"
    with open(out / "questions.csv") as handle:
        questions = list(csv.DictReader(handle))
    assert sum(int(q["most_common_answer/acc"]) for q in questions) == 200
    assert "no constant answer scores more): `acc` 66.7 [" in (out / "accuracy.md").read_text()


def test_a_generate_baseline_is_the_generate_accuracy_before_in_runs_csv(tmp_path):
    """Grids skip the untrained model's evaluation; its loralab-eval folder in generate mode
    is every run's gen_acc_before in runs.csv, as it is the table's "generate acc before"."""
    run = fake_run(tmp_path / "sgd-0", "sgd", 0, 150)
    (tmp_path / "base").mkdir()
    result = {
        "config": {"mode": "generate", "adapter_dir": None},
        "summary": {"overall": {"accuracy": 0.014}},
    }
    (tmp_path / "base" / "eval.json").write_text(json.dumps(result))
    out = tmp_path / "figs"
    figures_main([str(run), "--baseline", str(tmp_path / "base"), "--out", str(out)])
    with open(out / "runs.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["gen_acc_before"]) == 0.014


def test_grids_tested_on_different_questions_are_refused(tmp_path, capsys):
    first = fake_run(tmp_path / "a", "sgd", 0, 150)
    second = fake_run(tmp_path / "b", "rsgd", 0, 150, questions=200)
    try:
        figures_main([str(first), str(second), "--out", str(tmp_path / "figs")])
    except SystemExit as stopped:
        assert stopped.code == 2
    else:
        raise AssertionError("different test questions were compared")
    assert "different questions" in capsys.readouterr().err


def test_real_tiny_runs_leave_records_the_tables_are_computed_from(tmp_path):
    """Two optimizers x two seeds of a tiny text-form run: each run writes its per-question
    records before and after training; claims.md's effect is their difference."""
    from loralab.cli.train import run
    from tests.helpers import compose_config

    dirs = []
    for optimizer in ("adamw", "radamw"):
        for seed in (0, 1):
            cfg = compose_config(
                [
                    "experiment=smoke",
                    f"optimizer={optimizer}",
                    f"seed={seed}",
                    "logger=csv",
                    "task.answer_form=text",
                    "trainer.max_steps=4",
                    "trainer.val_check_interval=2",
                    "task.max_examples.test=24",
                ]
            )
            folder = tmp_path / f"{optimizer}-{seed}"
            summary, _ = run(cfg, folder)
            assert summary["predictions"] == ["test_step0.jsonl", "test_step4.jsonl"]
            assert set(summary["test_metrics"]) >= {"acc", "acc_stderr", "acc_norm_stderr"}
            dirs.append(folder)
    out = tmp_path / "figs"
    figures_main([*map(str, dirs), "--out", str(out)])

    def accuracy(folder):
        lines = (folder / "predictions" / "test_step4.jsonl").read_text().splitlines()
        hits = [json.loads(x)["picks"]["acc"] == json.loads(x)["gold_index"] for x in lines]
        assert len(hits) == 24
        return sum(hits) / 24

    effect = np.mean([accuracy(d) for d in dirs[2:]]) - np.mean([accuracy(d) for d in dirs[:2]])
    claims = (out / "claims.md").read_text()
    row = next(x for x in claims.splitlines() if "Riemannian preconditioning above plain" in x)
    assert f"| {signed_points(effect)} |" in row
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["seed"] for r in rows] == ["0", "1", "0", "1"] and rows[0]["test_size"] == "24"
    for folder, r in zip(dirs, rows, strict=True):
        assert float(r["acc_after"]) == accuracy(folder)
        assert r["acc_norm_after"] != "" and r["acc_per_token_after_stderr"] != ""


def test_an_effect_that_rounds_to_zero_has_no_sign():
    assert signed_points(-0.0004) == "0.0"
    assert signed_points(0.0004) == "0.0"
    assert signed_points(-0.0006) == "-0.1"
    assert signed_points(0.118) == "+11.8"


def test_a_p_value_below_float_range_is_not_printed_as_zero():
    """2,376 questions x 3 seeds where one variant diverged: McNemar's p underflows a float."""
    from loralab.evaluation.statistics import compare
    from loralab.runs.claims import Claim, claims_markdown

    right, wrong = np.ones((3, 2376)), np.zeros((3, 2376))
    result = compare(right, wrong)
    assert result.mcnemar_p == 0.0  # 2 x 2**-7128: below the smallest float
    table = claims_markdown([Claim("gate rescaling above none", "a", "b", result, (3, 3))], "x")
    assert "| < 1e-300 | reversed |" in table and "| 0 |" not in table


def test_loraplus_and_lorarite_are_compared_with_adamw_and_the_riemannian_variants(tmp_path):
    """LoRA+ answers 30 more of 300 than AdamW (holds), LoRA-RITE 30 fewer (reversed); RAdamW
    and gRAdamW sit at AdamW's count, so each is reversed against LoRA+, holds against LoRA-RITE."""
    counts = {"adamw": 180, "radamw": 180, "gradamw": 180, "loraplus": 210, "lorarite": 150}
    _, claims = constructed_grid(tmp_path, counts)

    def verdict(claim, a, b):
        return claim_cells(claims, claim, a, b)[-1]

    assert verdict("LoRA+ above AdamW", "adamw", "loraplus") == "holds"
    assert verdict("LoRA-RITE above AdamW", "adamw", "lorarite") == "reversed"
    for ours in ("radamw", "gradamw"):
        assert verdict("Riemannian AdamW above LoRA+ / LoRA-RITE", "loraplus", ours) == "reversed"
        assert verdict("Riemannian AdamW above LoRA+ / LoRA-RITE", "lorarite", ours) == "holds"


def test_a_run_without_a_test_record_is_named_not_silently_dropped(tmp_path, capsys):
    """A grid still running: the unfinished run's group cannot enter the claims, and says so."""
    dirs = [fake_run(tmp_path / f"{opt}-0", opt, 0, 200) for opt in ("sgd", "rsgd")]
    unfinished = fake_run(tmp_path / "rsgd-1", "rsgd", 1, 200)
    for file in (unfinished / "predictions").iterdir():
        if file.name != "test_step0.jsonl":
            file.unlink()
    figures_main([*map(str, dirs), str(unfinished), "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert "1 run(s) without a per-question test record" in err and str(unfinished) in err


def test_claims_png_draws_each_claim_s_interval_against_zero(tmp_path):
    """A row per claim in claims.md's order, named by what differs, its point at the effect and
    its bar over the 95 % interval (points), coloured by verdict."""
    import matplotlib.colors

    from loralab.evaluation.statistics import Comparison
    from loralab.runs.claims import Claim
    from loralab.runs.claims_figure import claims_figure

    out, _ = constructed_grid(tmp_path, {"sgd": 150, "rsgd": 210})
    assert (out / "claims.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    claims = [
        Claim("gate rescaling above none", "arc_e-moe_lora-sgd", "arc_e-moe_lora-gsgd",
              Comparison(0.02, 0.01, 0.035, "holds", True, 0.01, 30, 10), (3, 3)),
        Claim("training above the untrained model", "untrained", "arc_e-moe_lora-sgd",
              Comparison(-0.004, -0.02, 0.01, "not resolved at this size", False, None, 0, 0),
              (1, 3)),
    ]  # fmt: skip
    ax = claims_figure(claims).axes[0]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert labels == [
        "gate rescaling above none: gsgd − sgd",
        "training above the untrained model: sgd − untrained",
    ]
    for row, (container, (low, effect, high)) in enumerate(
        zip(ax.containers, [(1.0, 2.0, 3.5), (-2.0, -0.4, 1.0)], strict=True)
    ):
        point, _, (bar,) = container.lines
        assert point.get_xydata().tolist() == [[effect, -row]]
        np.testing.assert_allclose(bar.get_segments()[0], [[low, -row], [high, -row]])
    green, grey = (ax.containers[i].lines[0].get_color() for i in (0, 1))
    assert matplotlib.colors.to_hex(green) == matplotlib.colors.to_hex("tab:green")
    assert matplotlib.colors.to_hex(grey) != matplotlib.colors.to_hex("tab:green")
