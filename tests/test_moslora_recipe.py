"""MoSLoRA's recipe as its reference code runs it, one switch at a time on a tiny model: the
loss over prompt and answer, one gradient-norm clip over every adapter gradient, beam search
as transformers does it, and the adapter of the best validation pass kept."""

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from loralab.adapters import load_adapter
from loralab.cli.train import run
from loralab.data.encoding import IGNORE_INDEX, encode_prompt, pad_left
from loralab.evaluation.generation import generate_answers
from loralab.models import load_model
from tests.helpers import compose_config

TINY = [
    "model=tiny_llama",
    "trainer.precision=32-true",
    "logger=csv",
    "evaluation.before_training=false",
    "task.max_examples.train=32",
    "task.max_examples.validation=8",
    "task.max_examples.test=8",
]


def test_moslora_experiment_states_the_reference_recipe():
    cfg = compose_config(["experiment=moslora_commonsense"])
    OmegaConf.resolve(cfg)
    assert cfg.model.pretrained == "meta-llama/Meta-Llama-3-8B"
    assert cfg.data.train_on_inputs is True
    assert cfg.trainer.gradient_clip_val == 1.0
    assert cfg.optimizer.eps == 1e-8
    assert (cfg.evaluation.num_beams, cfg.evaluation.max_new_tokens) == (4, 32)
    assert (cfg.checkpoint.select_by, cfg.checkpoint.select_mode) == ("val/loss", "min")
    assert cfg.trainer.val_check_interval == 200
    assert compose_config(["experiment=moslora_commonsense_3b"]).model.name == "llama3_2_3b"


class Capture(Callback):
    """The first step's batch and gradients: as computed, and as the optimizer gets them."""

    def __init__(self):
        self.batch, self.raw, self.clipped = None, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batch is None:
            self.batch = {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.raw is None:
            self.raw = {
                n: p.grad.clone()
                for n, p in pl_module.model.named_parameters()
                if p.grad is not None
            }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.clipped is None:  # after the step; gradients are zeroed only at the next one
            self.clipped = {
                n: p.grad.clone()
                for n, p in pl_module.model.named_parameters()
                if p.grad is not None
            }


def _train_one_step(tmp_path, overrides, monkeypatch):
    """One optimizer step of a tiny run with a Capture callback on its trainer."""
    import lightning as L

    capture = Capture()
    original = L.Trainer.__init__

    def with_capture(self, *args, callbacks=(), **kwargs):
        original(self, *args, callbacks=[*callbacks, capture], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_capture)
    cfg = compose_config([*TINY, "trainer.max_steps=1", "adapter=lora", *overrides])
    _, model = run(cfg, tmp_path)
    return capture, model


def test_train_on_inputs_trains_every_token_of_prompt_and_answer(tmp_path, monkeypatch):
    """The first step's loss is transformers' own causal-LM loss with labels = the input ids
    (padding ignored), as the reference's train_on_inputs=True; without it, the answer only."""
    overrides = ["optimizer=sgd", "optimizer.lr=1e-9", "adapter.dropout=0.0", "trainer.max_steps=1"]
    capture, model = _train_one_step(
        tmp_path / "on", [*overrides, "data.train_on_inputs=true"], monkeypatch
    )
    batch = capture.batch
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
    assert torch.equal(batch["input_labels"], labels)
    logged = pd.read_csv(tmp_path / "on" / "metrics.csv").dropna(subset=["train/loss"])
    with torch.no_grad():
        reference = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
        ).loss
        answer_only = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss
    assert logged["train/loss"].iloc[0] == pytest.approx(reference.item(), rel=1e-4)
    assert abs(reference.item() - answer_only.item()) > 1e-3  # the switch changes the loss
    off, _ = _train_one_step(tmp_path / "off", overrides, monkeypatch)
    assert "input_labels" not in off.batch


def test_gradient_clip_scales_all_adapter_gradients_to_one_norm(tmp_path, monkeypatch):
    """trainer.gradient_clip_val (HF Trainer's max_grad_norm): one norm over every adapter
    gradient, each scaled by clip / norm when the norm is larger."""
    clip = 1e-4
    capture, _ = _train_one_step(
        tmp_path, ["optimizer=adamw", f"trainer.gradient_clip_val={clip}"], monkeypatch
    )
    raw = torch.linalg.vector_norm(torch.stack([g.norm() for g in capture.raw.values()]))
    assert raw > 10 * clip  # the clip acts
    for name, grad in capture.raw.items():
        torch.testing.assert_close(capture.clipped[name], grad * (clip / raw), rtol=1e-4, atol=0)


def test_beam_search_equals_transformers_generate():
    model, tokenizer = load_model(compose_config(["model=tiny_llama"]).model)
    model.eval()
    prompts = ["Question: which is a planet?\nAnswer:", "2 + 2 =", "The capital of France is"]
    ours = generate_answers(
        model, tokenizer, prompts, max_new_tokens=8, batch_size=1, max_length=64, num_beams=4
    )
    for prompt, text in zip(prompts, ours, strict=True):
        ids, _ = encode_prompt(tokenizer, prompt)
        batch = pad_left([ids], tokenizer.pad_token_id)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=8,
                num_beams=4,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        expected = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        assert text == expected
    greedy = generate_answers(
        model, tokenizer, prompts, max_new_tokens=8, batch_size=1, max_length=64
    )
    assert greedy != ours  # beams are a real choice on this model: the test compares something


def test_best_validation_pass_selects_the_adapter(tmp_path):
    """checkpoint.select_by: the selected step is the best pass by the metric (the step-0 pass
    excluded), adapter/ holds its weights (its validation loss recomputed from the folder equals
    the logged one) and adapter_last/ the last step's."""
    cfg = compose_config(
        [
            *TINY,
            "optimizer=adamw",
            "optimizer.lr=0.3",  # large steps: each pass's validation loss differs
            "trainer.max_steps=8",
            "trainer.val_check_interval=2",
            "checkpoint.select_by=val/loss",
            # the loss falls at every pass here: selecting its maximum picks an early step,
            # so adapter/ and adapter_last/ must differ, each matching its own pass
            "checkpoint.select_mode=max",
        ]
    )
    summary, _ = run(cfg, tmp_path)
    rows = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["val/loss"])
    trained = rows[rows["step"] > 0]
    best = trained.loc[trained["val/loss"].idxmax()]
    selection = summary["selection"]
    assert selection["selected_step"] == int(best["step"]) < 8 == selection["last_step"]
    assert selection["selected_value"] == pytest.approx(best["val/loss"], rel=1e-5)
    losses = {name: _validation_loss(cfg, tmp_path / name) for name in ("adapter", "adapter_last")}
    assert losses["adapter"] == pytest.approx(best["val/loss"], rel=1e-4)
    last_logged = rows[rows["step"] == 8]["val/loss"].iloc[0]
    assert losses["adapter_last"] == pytest.approx(last_logged, rel=1e-4)


def _validation_loss(cfg, adapter_dir) -> float:
    """The validation loss of the adapter in ``adapter_dir``, by the run's own validation."""
    import lightning as L

    from loralab.data.datamodule import TaskDataModule
    from loralab.module import FineTuningModule
    from loralab.tasks import build_task

    resolved = OmegaConf.to_container(cfg, resolve=True)
    model, tokenizer = load_model(resolved["model"])
    load_adapter(model, adapter_dir)
    data = TaskDataModule(
        build_task(resolved["task"]), tokenizer, dict(resolved["data"], seed=resolved["seed"])
    )
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    module = FineTuningModule(model, resolved["optimizer"])
    return trainer.validate(module, datamodule=data, verbose=False)[0]["val/loss"]


def test_a_resumed_run_selects_as_the_uninterrupted_one(tmp_path):
    """The best pass so far travels in the checkpoint: a run stopped after its selected step
    and continued ends with the same selection and the same adapter as one run through."""
    from safetensors.torch import load_file

    select = [
        *TINY,
        "optimizer=adamw",
        "optimizer.lr=0.3",
        "optimizer.scheduler.name=constant",  # the same lr whether the run is 4 or 8 steps long
        "trainer.val_check_interval=2",
        "checkpoint.every_n_steps=2",
        "checkpoint.select_by=val/loss",
        "checkpoint.select_mode=max",  # an early step: selected before the stop
    ]
    whole, _ = run(compose_config([*select, "trainer.max_steps=8"]), tmp_path / "whole")
    run(compose_config([*select, "trainer.max_steps=4"]), tmp_path / "parts")
    resumed, _ = run(
        compose_config([*select, "trainer.max_steps=8", "resume=auto"]), tmp_path / "parts"
    )
    assert whole["selection"]["selected_step"] < 4
    assert resumed["selection"] == whole["selection"]
    for folder in ("adapter", "adapter_last"):
        expected = load_file(tmp_path / "whole" / folder / "adapter.safetensors")
        actual = load_file(tmp_path / "parts" / folder / "adapter.safetensors")
        for key in expected:
            assert torch.equal(expected[key], actual[key]), (folder, key)
