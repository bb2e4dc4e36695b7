"""PEFT-native adapter folders: a LoRA / MoSLoRA saved by save_adapter loads in PEFT as it
stands and in loralab exactly, old folders still load, and loralab-export turns a run's adapter
or any step checkpoint into an adapter folder or a merged model (MoE-LoRA refused by name)."""

import copy
import json
import subprocess
import sys

import peft
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from loralab.adapters import (
    AdapterConfig,
    adapter_modules,
    export_peft,
    inject_adapters,
    load_adapter,
    save_adapter,
)
from loralab.adapters.io import AdapterFileError, adapter_state_dict
from loralab.cli.export import NO_MERGE, NO_PEFT, main
from tests.helpers import adapted, compose_config, snapshot

# peft 0.21 calls a transformers 5 property that warns; not ours to fix. PEFT also warns that
# it ignores loralab's own keys in adapter_config.json.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated"),
    pytest.mark.filterwarnings("ignore:Unexpected keyword arguments"),
]

IDS = torch.arange(14).reshape(2, 7) * 9 % 128
EPS = torch.finfo(torch.float32).eps
# PEFT adds B (A x) to the base output in another order than loralab's fused product, and a
# folded MoSLoRA computes (B M) (A x) for B (M (A x)): float32 rounding, through two layers
TOL = {"rtol": 64 * EPS, "atol": 64 * EPS}
LORA = AdapterConfig(rank=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
MOSLORA = AdapterConfig(kind="moslora", rank=4, alpha=8, dropout=0.0, target_modules="all")
MOE = AdapterConfig(kind="moe_lora", rank=2, num_experts=3, top_k=2, dropout=0.0)
KINDS = pytest.mark.parametrize("config", [LORA, MOSLORA], ids=["lora", "moslora"])


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


@KINDS
def test_a_saved_adapter_loads_in_peft_as_it_stands(tiny_llama, tmp_path, config):
    fresh = copy.deepcopy(tiny_llama)
    ours = adapted(tiny_llama, config)
    save_adapter(ours, tmp_path, config, base_model_name_or_path="org/tiny")
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["base_model_name_or_path"] == "org/tiny"
    assert (saved["r"], saved["lora_alpha"], saved["format_version"]) == (4, 8, 2)
    assert saved["target_modules"] == [name for name, _ in adapter_modules(ours)]
    assert saved["kind"] == config.kind  # loralab's keys beside PEFT's
    theirs = peft.PeftModel.from_pretrained(fresh, tmp_path).eval()
    assert theirs.peft_config["default"].r == config.rank
    torch.testing.assert_close(logits(theirs), logits(ours), **TOL)


def test_base_model_defaults_to_where_the_model_was_loaded_from(tiny_llama, tmp_path):
    tiny_llama.name_or_path = "/models/tiny"  # as from_pretrained records it (as PEFT reads it)
    save_adapter(adapted(tiny_llama, LORA), tmp_path, LORA)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "/models/tiny"


@KINDS
def test_loralab_reads_its_peft_folder_back_exactly(tiny_llama, tmp_path, config):
    fresh = copy.deepcopy(tiny_llama)
    ours = adapted(tiny_llama, config)
    save_adapter(ours, tmp_path, config)
    layers = load_adapter(fresh, tmp_path)
    assert (layers[0].mixer is not None) == (config.kind == "moslora")  # M kept, not folded
    assert torch.equal(logits(fresh), logits(ours))


@KINDS
def test_peft_weights_alone_load_as_lora_with_the_same_outputs(tiny_llama, tmp_path, config):
    """Without loralab's tensors a MoSLoRA is read from PEFT's, B M folded: no mixer."""
    fresh = copy.deepcopy(tiny_llama)
    ours = adapted(tiny_llama, config)
    save_adapter(ours, tmp_path, config)
    (tmp_path / "adapter.safetensors").unlink()
    layers = load_adapter(fresh, tmp_path)
    assert all(layer.mixer is None for layer in layers)
    torch.testing.assert_close(logits(fresh), logits(ours), **TOL)


def test_a_peft_folder_loralab_did_not_write_loads(tiny_llama, tmp_path):
    peft_config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj"])
    theirs = peft.get_peft_model(copy.deepcopy(tiny_llama), peft_config).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in theirs.named_parameters():
            if "lora_B" in name:
                param.normal_()
    theirs.save_pretrained(tmp_path)
    layers = load_adapter(tiny_llama, tmp_path)
    assert len(layers) == 2 and layers[0].scale == 2
    torch.testing.assert_close(logits(tiny_llama), logits(theirs), **TOL)


@KINDS
def test_an_old_format_folder_still_loads(tiny_llama, tmp_path, config):
    """format_version 1, as save_adapter wrote every kind before the PEFT folders."""
    fresh = copy.deepcopy(tiny_llama)
    ours = adapted(tiny_llama, config)
    tensors = {k: v.detach().contiguous() for k, v in adapter_state_dict(ours).items()}
    save_file(tensors, tmp_path / "adapter.safetensors")
    meta = config.to_dict() | {"format_version": 1}
    (tmp_path / "adapter_config.json").write_text(json.dumps(meta))
    load_adapter(fresh, tmp_path)
    assert torch.equal(logits(fresh), logits(ours))


def test_ranks_that_disagree_between_loralab_and_peft_are_refused(tiny_llama, tmp_path):
    save_adapter(adapted(copy.deepcopy(tiny_llama), LORA), tmp_path, LORA)
    file = tmp_path / "adapter_config.json"
    file.write_text(json.dumps(json.loads(file.read_text()) | {"lora_alpha": 32}))
    with pytest.raises(
        AdapterFileError, match=r"alpha=8 \(loralab's\) and lora_alpha=32 \(PEFT's\) disagree"
    ):
        load_adapter(tiny_llama, tmp_path)


def test_moe_lora_keeps_loralab_format_and_peft_is_refused_by_name(tiny_llama, tmp_path):
    model = adapted(tiny_llama, MOE)
    with pytest.raises(ValueError, match="MoE-LoRA has no PEFT equivalent"):
        save_adapter(model, tmp_path / "peft", MOE, format="peft")
    assert not (tmp_path / "peft").exists()
    save_adapter(model, tmp_path / "own", MOE)
    assert json.loads((tmp_path / "own" / "adapter_config.json").read_text())["format_version"] == 1
    assert not (tmp_path / "own" / "adapter_model.safetensors").exists()
    with pytest.raises(ValueError, match="cannot be exported as a PEFT LoRA"):
        export_peft(model, tmp_path / "export")


# -- loralab-export on a tiny real run -----------------------------------------------------

RUN = [
    "experiment=smoke",
    "adapter=lora",
    "trainer.max_steps=5",
    "trainer.val_check_interval=2",
    "checkpoint.every_n_steps=2",
    "logger=csv",
    "evaluation.before_training=false",
    "task.max_examples.train=40",
    "task.max_examples.validation=4",
    "task.max_examples.test=4",
]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A 5-step LoRA run: a step checkpoint of step 4 (the newest), last.ckpt (step 5) and
    adapter/ (step 5)."""
    from loralab.cli.train import run

    run_dir = tmp_path_factory.mktemp("lora_run")
    cfg = compose_config(RUN)
    run(cfg, run_dir)
    return run_dir, cfg


def base_model(cfg):
    from loralab.models import load_model

    model, _ = load_model(OmegaConf.to_container(cfg.model, resolve=True))
    return model


def at_checkpoint(cfg, path):
    """The model with the adapter tensors of checkpoint `path`, set directly."""
    model = base_model(cfg)
    inject_adapters(model, AdapterConfig.from_mapping(OmegaConf.to_container(cfg.adapter)))
    state = torch.load(path, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()}, strict=False)
    return model.eval()


def ids_for(cfg):
    return torch.arange(24).reshape(2, 12) * 7 % cfg.model.tiny.vocab_size


def test_a_runs_adapter_folder_loads_in_peft(lora_run):
    run_dir, cfg = lora_run
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["base_model_name_or_path"] is None  # tiny
    ours = base_model(cfg)
    load_adapter(ours, run_dir / "adapter")
    theirs = peft.PeftModel.from_pretrained(base_model(cfg), run_dir / "adapter").eval()
    torch.testing.assert_close(logits(theirs, ids_for(cfg)), logits(ours.eval(), ids_for(cfg)))


def test_export_turns_a_step_checkpoint_into_an_adapter_folder(lora_run, tmp_path, capsys):
    run_dir, cfg = lora_run
    checkpoint = next(  # found by the step it holds (its file name gives another number)
        p
        for p in (run_dir / "checkpoints").glob("step*.ckpt")
        if torch.load(p, weights_only=True)["global_step"] == 4
    )
    assert main([str(run_dir), "--checkpoint", "step4", "--out", str(tmp_path / "s4")]) == 0
    assert "wrote a lora adapter in peft format" in capsys.readouterr().out
    stored = torch.load(checkpoint, weights_only=True)["state_dict"]
    exported = load_file(tmp_path / "s4" / "adapter.safetensors")
    assert exported.keys() == {k.removeprefix("model.") for k in stored}
    assert all(torch.equal(exported[k.removeprefix("model.")], v) for k, v in stored.items())
    final = load_file(run_dir / "adapter" / "adapter.safetensors")
    assert any(not torch.equal(final[k], v) for k, v in exported.items())  # step 4, not 5
    expected = logits(at_checkpoint(cfg, checkpoint), ids_for(cfg))
    theirs = peft.PeftModel.from_pretrained(base_model(cfg), tmp_path / "s4").eval()
    torch.testing.assert_close(logits(theirs, ids_for(cfg)), expected, **TOL)
    ours = base_model(cfg)
    load_adapter(ours, tmp_path / "s4")
    assert torch.equal(logits(ours.eval(), ids_for(cfg)), expected)
    # the last checkpoint is the run's final adapter; the default folder is named by its step
    assert main([str(run_dir), "--checkpoint", "last", "--format", "loralab"]) == 0
    last = load_file(run_dir / "export" / "step5-loralab" / "adapter.safetensors")
    assert last.keys() == final.keys() and all(torch.equal(last[k], final[k]) for k in final)


def test_merge_writes_a_model_with_the_adapted_logits(lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, cfg = lora_run
    assert main([str(run_dir), "--merge", "--out", str(tmp_path / "merged")]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert AutoTokenizer.from_pretrained(tmp_path / "merged").vocab_size > 0
    adapted_model = base_model(cfg)
    load_adapter(adapted_model, run_dir / "adapter")
    expected = logits(adapted_model.eval(), ids_for(cfg))
    torch.testing.assert_close(logits(merged, ids_for(cfg)), expected, **TOL)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--checkpoint", "step99"], "no checkpoint holds step 99; "),
        (["--checkpoint", "nowhere.ckpt"], "no checkpoint file nowhere.ckpt; "),
        (["--merge", "--format", "peft"], "--format peft applies to adapter folders"),
        (["--out", "{run}"], "exists and is not empty; remove it or choose another --out"),
    ],
)
def test_bad_export_arguments_are_refused_naming_the_value(lora_run, capsys, args, fragment):
    run_dir, _ = lora_run
    before = snapshot(run_dir)
    args = [a.format(run=run_dir) for a in args]
    assert main([str(run_dir), *args]) == 2
    assert fragment in capsys.readouterr().err
    assert snapshot(run_dir) == before


def test_a_folder_that_is_no_run_is_refused(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "holds no .hydra/config.yaml" in capsys.readouterr().err


@pytest.fixture
def moe_run(tmp_path):
    """A MoE-LoRA run folder: its config record and a step checkpoint written by hand."""
    from loralab.models import load_model

    cfg = compose_config(
        ["experiment=smoke", "adapter=moe_lora", "adapter.num_experts=3", "adapter.top_k=2"]
    )
    run_dir = tmp_path / "moe_run"
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    model, _ = load_model(OmegaConf.to_container(cfg.model, resolve=True))
    config = AdapterConfig.from_mapping(OmegaConf.to_container(cfg.adapter))
    model = adapted(model, config)
    state = {f"model.{k}": v.detach() for k, v in adapter_state_dict(model).items()}
    (run_dir / "checkpoints").mkdir()
    torch.save({"state_dict": state, "global_step": 3}, run_dir / "checkpoints" / "step3.ckpt")
    return run_dir, cfg, model


def test_moe_lora_export_refuses_peft_and_merge_by_name(moe_run, capsys):
    run_dir, *_ = moe_run
    assert main([str(run_dir), "--checkpoint", "3", "--format", "peft"]) == 2
    assert NO_PEFT in capsys.readouterr().err
    assert main([str(run_dir), "--checkpoint", "3", "--merge"]) == 2
    assert NO_MERGE in capsys.readouterr().err and "MoE-LoRA cannot be merged" in NO_MERGE
    assert not (run_dir / "export").exists()


def test_moe_lora_exports_in_loralab_format(moe_run):
    run_dir, cfg, model = moe_run
    assert main([str(run_dir), "--checkpoint", "step3"]) == 0
    folder = run_dir / "export" / "step3-loralab"
    assert json.loads((folder / "adapter_config.json").read_text())["format_version"] == 1
    fresh = base_model(cfg)
    load_adapter(fresh, folder)
    assert torch.equal(logits(fresh.eval(), ids_for(cfg)), logits(model, ids_for(cfg)))


def test_the_console_script_answers_and_refuses_with_exit_2(moe_run):
    run_dir, *_ = moe_run
    command = [sys.executable, "-m", "loralab.cli.export"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--checkpoint" in done.stdout and "--merge" in done.stdout
    done = subprocess.run(
        [*command, str(run_dir), "--checkpoint", "last", "--format", "peft"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and NO_PEFT in done.stderr
