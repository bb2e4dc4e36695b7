"""The benchmark harness (benchmarks/): structure and honesty of what it reports, never speed.

Runs the whole `python -m benchmarks.train_step` pipeline in-process on a tiny model (timings
are meaningless there and nothing here asserts on them), checks the table, the JSON and the
plot, the memory probe on a known allocation, and that the looped baseline computes the same
function as our layer (so the speed comparison is between equals); likewise
`benchmarks.eval_scoring`, whose baseline (each option its own sequence) must pick as loralab's
text-form scoring does.
"""

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks import eval_scoring, measure, optimizer_step, profile_step, report, train_step
from benchmarks.looped import LoopedMoELoRA
from benchmarks.models import tiny_llama
from benchmarks.variants import STEP_VARIANTS, build, make_step
from loralab.adapters import AdapterConfig, AdapterLinear

TINY_ARGS = [
    "--quick",
    "--models",
    "tiny",
    "--sweep-experts",
    "1,4",
    "--sweep-ranks",
    "4,8",
    "--min-rounds",
    "1",
    "--max-rounds",
    "2",
    "--threads",
    "1",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results = train_step.main([*TINY_ARGS, "--out", str(out)])
    return results, out


def test_json_holds_every_variant_ratio_and_target(tiny_run):
    results, out = tiny_run
    path = out / "train_step-cpu-quick.json"
    assert Path(results["json"]) == path
    saved = json.loads(path.read_text())
    assert saved["meta"]["device"] == "cpu" and saved["meta"]["threads"] == 1
    model = saved["models"]["tiny"]
    assert set(model["variants"]) == {variant.name for variant in STEP_VARIANTS}
    for entry in model["variants"].values():
        assert entry["median_s"] > 0 and entry["peak_bytes"] >= entry["static_bytes"] > 0
        assert 1 <= len(entry["times_s"]) <= 2
    assert model["variants"]["frozen"]["trainable"] == 0
    assert model["variants"]["moe_lora"]["trainable"] > model["variants"]["lora_r4"]["trainable"]
    labels = {row["label"] for row in model["ratios"]}
    for ratio in (*report.STEP_RATIOS, *report.OPTIMIZER_RATIOS):
        assert ratio.label in labels
    for row in model["ratios"]:
        assert row["value"] > 0
        assert (row["target"] is None) == (row["pass"] is None)
    limited = [r for r in report.STEP_RATIOS if r.limit is not None]
    assert len([t for t in saved["targets"] if t["model"] == "tiny"]) == len(limited)
    assert set(model["optimizer"]["median_s"]) == set(train_step.OPTIMIZERS)
    assert {"adamw", "loraplus", "lorarite"} <= set(train_step.OPTIMIZERS)


def test_optimizer_step_alone_times_every_optimizer_beside_adamw(tmp_path, capsys):
    args = ["--quick", "--models", "tiny", "--device", "cpu", "--budget-s", "1"]
    results = optimizer_step.main([*args, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "optimizer_step-cpu-quick.json").read_text())
    assert saved["setups"].keys() == results["setups"].keys() == {"tiny/moe_lora", "tiny/lora_r16"}
    for setup in saved["setups"].values():
        assert set(setup["median_s"]) == set(train_step.OPTIMIZERS)
        assert setup["x_adamw"]["adamw"] == 1.0 and min(setup["x_adamw"].values()) > 0
    text = capsys.readouterr().out
    assert "LoRA r=16" in text and "lorarite" in text and "x AdamW" in text


def test_sweep_points_slopes_and_plot(tiny_run):
    results, out = tiny_run
    sweep = results["sweep"]
    points = [(p["experts"], p["rank"], p["axis"]) for p in sweep["points"]]
    assert points == [(1, 4, "experts"), (4, 4, "experts"), (8, 4, "rank"), (8, 8, "rank")]
    assert set(sweep["slopes"]) == {"experts", "rank"}
    assert set(sweep["slopes"]["experts"]) == {"ours", "looped"}
    assert any(row["pass"] is not None for row in sweep["ratios"])
    plot = out / "train_step_scaling-cpu-quick.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_printed_table_shows_every_target_with_pass_or_fail(tiny_run, capsys):
    results, _ = tiny_run
    text = report.render(results)
    for variant in STEP_VARIANTS:
        assert variant.label in text
    for row in results["targets"]:
        line = next(line for line in text.splitlines() if line.startswith(row["label"]))
        assert row["target"] in line
        assert line.rstrip().endswith("PASS" if row["pass"] else "FAIL")
    assert "targets:" in text and "scaling sweep" in text


def test_optimizer_and_rescaling_variants_train_the_same_model():
    variants = {variant.name: variant for variant in STEP_VARIANTS}
    base = tiny_llama().build(torch.device("cpu"), torch.float32)
    plain = build(variants["moe_lora"], base, seed=0)
    rescaled = build(variants["moe_lora_g"], base, seed=0, shared=plain)
    radamw = build(variants["moe_lora_radamw"], base, seed=0, shared=plain)
    assert rescaled.model is plain.model is radamw.model
    assert len({id(b.optimizer) for b in (plain, rescaled, radamw)}) == 3
    assert (plain.gate_rescale, rescaled.gate_rescale, radamw.gate_rescale) == (False, True, False)
    ids = torch.randint(0, 128, (1, 8))
    layer = plain.model.model.layers[0].self_attn.q_proj
    make_step(rescaled, ids, seed=0)()
    assert layer.gate_rescale
    make_step(plain, ids, seed=0)()
    assert not layer.gate_rescale
    with pytest.raises(ValueError, match="shares"):
        build(variants["moe_lora_radamw"], base, seed=0)


def test_interleave_rotates_order_and_stops_at_max_rounds():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timing = measure.interleave(
        steps, track=[("a", "b")], min_rounds=1, max_rounds=3, budget_s=1e9, tol=0.0
    )
    assert timing.rounds == 3 and timing.stopped == "max_rounds"
    assert calls == ["a", "b", "c", "a", "c", "b", "c", "a", "b"]
    assert all(len(times) == 3 for times in timing.times.values())


def test_step_peak_bytes_sees_a_known_allocation():
    def step():
        big = torch.ones(1_000_000)  # 4 MB, freed at return
        return big.sum()

    peak = measure.step_peak_bytes(step, torch.device("cpu"))
    assert 4_000_000 <= peak < 8_000_000


def test_fit_slopes_recovers_a_power_law():
    xs = [1, 2, 4, 8]
    slopes = report.fit_slopes(xs, [3.0 * x**0.5 for x in xs])
    assert slopes["loglog"] == pytest.approx(0.5)


def test_looped_baseline_computes_our_layer_function():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    config = AdapterConfig(kind="moe_lora", rank=3, alpha=6, dropout=0.0, num_experts=5, top_k=2)
    ours = AdapterLinear(copy.deepcopy(base), config)
    looped = LoopedMoELoRA(copy.deepcopy(base), experts=5, top_k=2, rank=3, alpha=6, dropout=0.0)
    with torch.no_grad():
        ours.lora_B.normal_()
        for i in range(5):
            looped.lora_A[i].weight.copy_(ours.lora_A[i])
            looped.lora_B[i].weight.copy_(ours.lora_B[i])
        looped.gate.weight.copy_(ours.router.weight)
    x = torch.randn(2, 4, 12)
    torch.testing.assert_close(looped(x), ours(x))
    ours(x).square().sum().backward()
    looped(x).square().sum().backward()
    torch.testing.assert_close(looped.gate.weight.grad, ours.router.weight.grad)
    for i in range(5):
        torch.testing.assert_close(looped.lora_A[i].weight.grad, ours.lora_A.grad[i])
        torch.testing.assert_close(looped.lora_B[i].weight.grad, ours.lora_B.grad[i])


def test_profile_counts_fewer_optimizer_kernels_with_multi_tensor_updates(tmp_path, capsys):
    """The profiler's per-step operator counts: the multi-tensor optimizer must launch fewer
    operations in optimizer.step() than the per-tensor loop, for the same training step."""
    result = profile_step.main(
        [
            "--device=cpu",
            "--model=tiny",
            "--variants=lora_r4,moe_lora_radamw",
            "--setups=foreach,loop",
            "--steps=1",
            "--warmup=0",
            f"--out={tmp_path}",
        ]
    )
    rows = {(row["variant"], row["setup"]): row for row in result["rows"]}
    assert set(rows) == {
        (v, s) for v in ("lora_r4", "moe_lora_radamw") for s in ("foreach", "loop")
    }
    for variant in ("lora_r4", "moe_lora_radamw"):
        fused, looped = rows[(variant, "foreach")], rows[(variant, "loop")]
        assert 0 < fused["optimizer_kernels"] < looped["optimizer_kernels"]
        assert fused["kernels"] > fused["optimizer_kernels"] and fused["top"]
    assert (tmp_path / "profile_step-cpu-tiny.json").exists()
    assert "optimizer.step" in capsys.readouterr().out


def test_eval_scoring_baseline_picks_as_the_text_form_and_json_holds_every_step(tmp_path):
    args = [
        "--quick",
        "--precision=32-true",
        "--min-rounds=1",
        "--max-rounds=1",
        f"--out={tmp_path}",
    ]
    eval_scoring.main(args)
    saved = json.loads((tmp_path / "eval_scoring-quick.json").read_text())
    assert set(saved["steps"]) == {"label", "text", "text_old"}
    assert [row["label"] for row in saved["ratios"]] == [r.label for r in eval_scoring.RATIOS]
    agreement = saved["agreement"]
    assert agreement["same_picks"] == agreement["questions"] == 16
    assert agreement["max_abs_mean_logprob_diff"] < 1e-4  # float32: equal to rounding
    assert set(saved["whole_split"]) == {"text", "label"}
