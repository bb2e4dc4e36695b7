"""trainer.precision=auto: a concrete precision, chosen from the CPU's flags or by a probe cached
only when its answer is clear, logged; explicit wins. No test depends on this machine's timing
or flags: both are injected."""

import json
import logging
import os

import pytest

from loralab.cli import precision
from loralab.cli.precision import CPU_CHOICES, choose_cpu_precision, resolve_precision
from loralab.cli.train import run
from loralab.cli.validation import ConfigError, validate_config
from tests.helpers import compose_config, make_tiny_llama

CPU_AUTO = {"accelerator": "cpu", "precision": "auto"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORALAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "precision_probe.json"


@pytest.fixture(autouse=True)
def quiet_cpu_with_avx512_bf16(monkeypatch):
    """A CPU whose flags leave the choice to the probe, with no other process running."""
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(precision, "_load_average", lambda: 0.0)


def _no_probe(*args, **kwargs):
    raise AssertionError("the probe ran")


def _times(float32_ms: float, bf16_ms: float):
    """A probe that measures these times in every round."""
    return lambda hidden, inner, bf16: bf16_ms if bf16 else float32_ms


def _resolve(caplog) -> tuple[str, str]:
    """(the precision auto chooses for the tiny model on a CPU, the line it logs)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="loralab"):
        chosen = resolve_precision(CPU_AUTO, make_tiny_llama())
    (line,) = [r.getMessage() for r in caplog.records if "precision auto" in r.getMessage()]
    return chosen, line


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
    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=3.0, bf16_ms=1.0))
    chosen, line = _resolve(caplog)  # the tiny model: hidden 64, intermediate 128
    assert chosen == "bf16-mixed" and chosen in CPU_CHOICES
    assert line.startswith("precision auto -> bf16-mixed") and "measured now, cached" in line
    (entry,) = json.loads(cache.read_text()).values()
    assert entry == {"float32_ms": 3.0, "bf16_ms": 1.0}

    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)  # the cache answers now
    assert _resolve(caplog) == ("bf16-mixed", line.replace("measured now, cached", "cached"))


def test_cached_answer_decides(cache, monkeypatch):
    """What the probe found on this machine is what the run uses (here: a faked bf16 win)."""
    model = make_tiny_llama()
    monkeypatch.setattr(precision, "_time_matmuls", lambda h, i, bf16: 1.0 if bf16 else 3.0)
    assert resolve_precision(CPU_AUTO, model) == "bf16-mixed"


def test_a_load_during_part_of_the_probe_does_not_decide_it(cache, monkeypatch, caplog):
    """Another process busy while bf16 is first timed (5x slower then) must not make a CPU
    with fast bf16 pick float32: the rounds alternate and the fastest of each counts. Rounds
    that disagree that much say the CPU was busy: the answer is not cached."""
    calls = []

    def contended(hidden, inner, bf16):
        calls.append(bf16)
        load = 5.0 if len(calls) == 2 else 1.0
        return load * (1.0 if bf16 else 3.0)

    monkeypatch.setattr(precision, "_time_matmuls", contended)
    chosen, line = _resolve(caplog)
    assert chosen == "bf16-mixed"
    assert calls == [False, True] * precision.PROBE_ROUNDS
    assert "not cached: its bf16 rounds disagree (1.00-5.00 ms)" in line
    assert not cache.exists()


def test_a_probe_taken_under_load_cannot_pin_float32(cache, monkeypatch, caplog):
    """The probe of the report, replayed: taken while other processes loaded the CPU it found
    float32 faster (31.98 vs 39.99 ms) and cached that for good, where the idle CPU runs bf16
    twice as fast (4.85 vs 2.44 ms). A close call decides one run only; the idle probe is
    cached and answers from then on."""
    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=31.98, bf16_ms=39.99))
    chosen, line = _resolve(caplog)
    assert chosen == "32-true" and "not cached: float32 and bf16 within 1.3x" in line
    assert not cache.exists()

    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=4.85, bf16_ms=2.44))
    assert _resolve(caplog)[0] == "bf16-mixed"
    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)
    assert _resolve(caplog)[0] == "bf16-mixed"


def test_a_close_call_cached_before_is_probed_again(cache, monkeypatch, caplog):
    """A cache written before close calls were refused may hold the loaded probe: it is
    measured again, and the clear answer replaces it."""
    key = precision._machine_key(64, 128)  # the tiny model's shapes
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({key: {"float32_ms": 31.98, "bf16_ms": 39.99}}))
    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=4.85, bf16_ms=2.44))
    chosen, line = _resolve(caplog)
    assert chosen == "bf16-mixed" and "measured now, cached" in line
    assert json.loads(cache.read_text())[key] == {"float32_ms": 4.85, "bf16_ms": 2.44}


def test_a_probe_while_the_load_exceeds_the_cores_is_not_cached(cache, monkeypatch, caplog):
    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=3.0, bf16_ms=1.0))
    monkeypatch.setattr(precision, "_load_average", lambda: 2.0 * (os.cpu_count() or 1) + 1)
    chosen, line = _resolve(caplog)
    assert chosen == "bf16-mixed" and "not cached: load average" in line
    assert not cache.exists()


@pytest.mark.parametrize(
    "flags,chosen,why",
    [
        ({"avx512_bf16", "amx_bf16", "amx_tile"}, "bf16-mixed", "AMX (amx_bf16, amx_tile)"),
        ({"avx2", "amx_tile"}, "bf16-mixed", "AMX (amx_tile)"),
        ({"avx2", "avx512f"}, "32-true", "neither AVX512-BF16 nor AMX"),
    ],
)
def test_cpu_flags_that_settle_the_choice_replace_the_probe(
    cache, monkeypatch, caplog, flags, chosen, why
):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "_time_matmuls", _no_probe)
    resolved, line = _resolve(caplog)
    assert resolved == chosen and line.startswith(f"precision auto -> {chosen}: this CPU has {why}")
    assert not cache.exists()


def test_unknown_cpu_flags_leave_it_to_the_probe(cache, monkeypatch):
    """No x86 flags to read (another OS or architecture), or AVX512-BF16 without AMX (fast on
    an AMD EPYC, slow on an Intel Xeon): timed."""
    monkeypatch.setattr(precision, "_time_matmuls", _times(float32_ms=3.0, bf16_ms=1.0))
    for flags in (None, {"avx512f", "avx512_bf16"}):
        monkeypatch.setattr(precision, "_cpu_flags", lambda flags=flags: flags)
        assert precision.cpu_feature_choice(flags) is None
        assert resolve_precision(CPU_AUTO, make_tiny_llama()) == "bf16-mixed"


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
