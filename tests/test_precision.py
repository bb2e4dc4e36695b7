"""trainer.precision=auto: a concrete precision, chosen by a cached probe, logged; explicit wins."""

import json
import logging

import pytest

from loralab import precision
from loralab.precision import CPU_CHOICES, choose_cpu_precision, resolve_precision
from loralab.train import run
from loralab.validation import ConfigError, validate_config
from tests.helpers import compose_config, make_tiny_llama

CPU_AUTO = {"accelerator": "cpu", "precision": "auto"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORALAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "precision_probe.json"


def _no_probe(*args, **kwargs):
    raise AssertionError("the probe ran")


def test_bf16_only_where_clearly_faster():
    assert choose_cpu_precision(float32_ms=2.0, bf16_ms=1.0) == "bf16-mixed"  # AVX512-BF16
    assert choose_cpu_precision(float32_ms=1.65, bf16_ms=2.78) == "32-true"  # emulated bf16
    assert choose_cpu_precision(float32_ms=1.0, bf16_ms=0.95) == "32-true"  # within noise


def test_explicit_precision_is_used_as_given(cache, monkeypatch):
    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)
    model = make_tiny_llama()
    for explicit in ("32-true", "bf16-mixed", "16-mixed"):
        assert resolve_precision({"accelerator": "cpu", "precision": explicit}, model) == explicit
    assert not cache.exists()


def test_auto_on_a_gpu_trainer_is_bf16_mixed(cache, monkeypatch):
    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)
    trainer = {"accelerator": "gpu", "precision": "auto"}
    assert resolve_precision(trainer, make_tiny_llama()) == "bf16-mixed"


def test_auto_on_a_cpu_probes_once_logs_and_caches(cache, monkeypatch, caplog):
    model = make_tiny_llama()  # hidden 64, intermediate 128
    with caplog.at_level(logging.INFO, logger="loralab"):
        chosen = resolve_precision(CPU_AUTO, model)
    assert chosen in CPU_CHOICES
    (line,) = [r.getMessage() for r in caplog.records if "precision auto" in r.getMessage()]
    assert line.startswith(f"precision auto -> {chosen}") and "measured now" in line
    (entry,) = json.loads(cache.read_text()).values()
    assert chosen == choose_cpu_precision(entry["float32_ms"], entry["bf16_ms"])

    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)  # the cache answers now
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="loralab"):
        assert resolve_precision(CPU_AUTO, model) == chosen
    assert any("(cached;" in r.getMessage() for r in caplog.records)


def test_cached_answer_decides(cache, monkeypatch):
    """What the probe found on this machine is what the run uses (here: a faked bf16 win)."""
    model = make_tiny_llama()
    monkeypatch.setattr(precision, "_time_matmuls", lambda h, i, bf16: 1.0 if bf16 else 3.0)
    assert resolve_precision(CPU_AUTO, model) == "bf16-mixed"


def test_a_load_during_part_of_the_probe_does_not_decide_it(cache, monkeypatch):
    """Another process busy while bf16 is first timed (5x slower then) must not make a CPU
    with fast bf16 pick float32: the rounds alternate and the fastest of each counts."""
    calls = []

    def contended(hidden, inner, bf16):
        calls.append(bf16)
        load = 5.0 if len(calls) == 2 else 1.0
        return load * (1.0 if bf16 else 3.0)

    monkeypatch.setattr(precision, "_time_matmuls", contended)
    assert resolve_precision(CPU_AUTO, make_tiny_llama()) == "bf16-mixed"
    assert calls == [False, True] * precision.PROBE_ROUNDS
    (entry,) = json.loads(cache.read_text()).values()
    assert entry == {"float32_ms": 3.0, "bf16_ms": 1.0}


def test_training_run_uses_the_resolved_precision(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "_time_matmuls", lambda h, i, bf16: 1.0)
    overrides = [
        "model=tiny_llama",
        "logger=csv",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "evaluation.before_training=false",
        "task.max_examples.train=16",
        "task.max_examples.validation=4",
        "task.max_examples.test=4",
    ]
    cfg = compose_config(overrides)
    assert cfg.trainer.precision == "auto"  # the CPU default
    summary, _ = run(cfg, tmp_path / "run")
    assert summary["precision"] == "32-true"  # equal timings: float32
    explicit = compose_config([*overrides, "trainer.precision=bf16-mixed"])
    summary, _ = run(explicit, tmp_path / "explicit")
    assert summary["precision"] == "bf16-mixed"


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="trainer.precision='bf17'"):
        validate_config(compose_config(["model=tiny_llama", "trainer.precision=bf17"]))
