"""``trainer.precision=auto``: bf16 autocast on a CPU only where it is known or measured to be
faster.

CPUs differ: with AMX a bf16 matmul runs natively, faster than float32; without AVX512-BF16 or
AMX bf16 is emulated and slower. AVX512-BF16 alone settles nothing: bf16 was 4x faster than
float32 on an AMD EPYC and 1.7x slower on an Intel Xeon. So ``auto`` decides from the CPU's
flags where they settle it, and otherwise times the model's own layer shapes both ways and
caches the answer per machine in the loralab cache, but only a clear answer taken on a quiet
CPU: a close call, or a probe that other processes slowed, decides the run at hand and is
probed again next time (a busy CPU once cached float32 where bf16 was twice as fast). On a GPU
``auto`` is bf16-mixed. Any explicit precision is used as given.
loralab-eval resolves its ``precision`` the same way, so an adapter is scored as it was trained,
and its ``device`` (as the benchmarks do theirs) with `resolve_device`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("loralab")

AUTO = "auto"
CPU_CHOICES = ("32-true", "bf16-mixed")
# loralab-eval: no Trainer, so no autocast or bf16 autocast. MODEL_DTYPE (its default): the
# checkpoint's own dtype (model.dtype) with no autocast, what lm-evaluation-harness runs
MODEL_DTYPE = "model"
EVAL_CHOICES = (MODEL_DTYPE, AUTO, *CPU_CHOICES)
# bf16 also rounds: take it only when it is clearly faster, not within timing noise.
BF16_MIN_SPEEDUP = 1.15
PROBE_TOKENS = 256  # rows of the probe's matmuls: a batch of 8 prompts of ~32 tokens
PROBE_REPEATS = 5  # timed calls per round (their median)
PROBE_ROUNDS = 3
CACHE_MARGIN = 1.3  # cache a probe only where one side was at least this much faster
ROUND_SPREAD = 1.5  # the rounds of one side further apart than this: the CPU was busy
AMX_FLAGS = ("amx_bf16", "amx_tile")


def resolve_device(name: str) -> torch.device:
    """``auto`` is the GPU where torch sees one, else the CPU; any other name as given."""
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(trainer_cfg: Mapping[str, Any], model) -> str:
    """The concrete Lightning precision for ``trainer_cfg['precision']`` and ``model``."""
    precision = str(trainer_cfg.get("precision", "32-true"))
    if precision == MODEL_DTYPE:  # loralab-eval's default: no autocast, the weights' dtype
        return f"{str(next(model.parameters()).dtype).removeprefix('torch.')} (model dtype)"
    if precision != AUTO:
        return precision
    if _uses_gpu(trainer_cfg):
        log.info("precision auto -> bf16-mixed (GPU)")
        return "bf16-mixed"
    known = cpu_feature_choice(_cpu_flags())
    if known is not None:
        log.info("precision auto -> %s: %s", *known)
        return known[0]
    config = getattr(model, "config", None)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inner = int(getattr(config, "intermediate_size", 0) or 0) or 4 * hidden
    if hidden < 1:
        log.info("precision auto -> 32-true (model has no hidden_size to probe)")
        return "32-true"
    measured = cpu_probe(hidden, inner)
    choice = choose_cpu_precision(measured["float32_ms"], measured["bf16_ms"])
    log.info(
        "precision auto -> %s: a (%d x %d) @ (%d x %d) matmul pair took %.2f ms in float32 and "
        "%.2f ms under bf16 autocast on this CPU (%s; bf16 needs a %.2fx speed-up)",
        choice,
        PROBE_TOKENS,
        hidden,
        hidden,
        inner,
        measured["float32_ms"],
        measured["bf16_ms"],
        _provenance(measured),
        BF16_MIN_SPEEDUP,
    )
    return choice


def cpu_feature_choice(flags: set[str] | None) -> tuple[str, str] | None:
    """(precision, why) where the CPU's flags settle it; None where only timing can tell
    (AVX512-BF16 without AMX, or flags unknown: not an x86 Linux)."""
    if flags is None:
        return None
    amx = sorted(flags.intersection(AMX_FLAGS))
    if amx:
        return "bf16-mixed", f"this CPU has AMX ({', '.join(amx)}): native bf16 matmuls"
    if "avx512_bf16" not in flags:
        return "32-true", "this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated"
    return None


def forward_context(precision: str, device: torch.device):
    """What Lightning's precision plugin wraps a forward pass in, outside a Trainer: bf16
    autocast for ``bf16-mixed``, nothing for ``32-true``."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "32-true" or precision.endswith("(model dtype)"):
        return contextlib.nullcontext()
    raise ValueError(f"precision={precision!r} must be one of {list(CPU_CHOICES)} here")


def choose_cpu_precision(float32_ms: float, bf16_ms: float) -> str:
    """bf16-mixed where it is at least ``BF16_MIN_SPEEDUP`` times faster, else 32-true."""
    return "bf16-mixed" if bf16_ms * BF16_MIN_SPEEDUP <= float32_ms else "32-true"


def cpu_probe(hidden: int, inner: int, cache_file: Path | None = None) -> dict[str, Any]:
    """Time of the probe in float32 and under bf16 autocast, the fastest of ``PROBE_ROUNDS``
    alternating rounds (other processes on the CPU only ever slow a round down). Cached per
    machine only when `_doubt` finds nothing, else returned with ``not_cached``: the reason; a
    cached close call (older versions cached any answer) is probed again."""
    path = cache_file or _cache_file()
    key = _machine_key(hidden, inner)
    cache = _read_cache(path)
    if _clear(cache.get(key)):
        return dict(cache[key], cached=True)
    rounds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(PROBE_ROUNDS):  # interleaved: a passing load slows both, not one
        for bf16 in (False, True):
            rounds[bf16].append(_time_matmuls(hidden, inner, bf16=bf16))
    measured = {"float32_ms": min(rounds[False]), "bf16_ms": min(rounds[True])}
    doubt = _doubt(measured, rounds)
    if doubt:
        return dict(measured, not_cached=doubt)
    cache[key] = measured
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError as err:  # a read-only cache costs a re-probe next time, nothing more
        log.warning("could not cache the precision probe in %s: %s", path, err)
    return measured


def _clear(measured) -> bool:
    """Two positive times, one at least ``CACHE_MARGIN`` times the other."""
    try:
        fast, slow = sorted((float(measured["float32_ms"]), float(measured["bf16_ms"])))
    except (TypeError, KeyError, ValueError):  # no entry, or a damaged one
        return False
    return fast > 0 and slow >= CACHE_MARGIN * fast


def _doubt(measured: dict[str, float], rounds: dict[bool, list[float]]) -> str | None:
    """Why a probe must not be cached, or None: a close call (a busy CPU can turn it around),
    rounds that disagree, or more runnable processes than cores."""
    if not _clear(measured):
        return f"float32 and bf16 within {CACHE_MARGIN}x of each other"
    for bf16, times in rounds.items():
        if max(times) > ROUND_SPREAD * min(times):
            side = "bf16" if bf16 else "float32"
            return f"its {side} rounds disagree ({min(times):.2f}-{max(times):.2f} ms): a busy CPU"
    load, cores = _load_average(), os.cpu_count() or 1
    if load > cores:
        return f"load average {load:.1f} above the {cores} cores: a busy CPU"
    return None


def _provenance(measured: dict[str, Any]) -> str:
    if measured.get("cached"):
        return "cached"
    if measured.get("not_cached"):
        return f"measured now, not cached: {measured['not_cached']}"
    return "measured now, cached"


def _time_matmuls(hidden: int, inner: int, bf16: bool) -> float:
    """Milliseconds for an up- and a down-projection, as a training step computes them:
    float32 weights, cast by autocast when ``bf16``."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(PROBE_TOKENS, hidden, generator=generator)
    up = torch.randn(inner, hidden, generator=generator)
    down = torch.randn(hidden, inner, generator=generator)
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(PROBE_REPEATS + 1):  # the first call warms the kernels up
            started = time.perf_counter()
            torch.nn.functional.linear(torch.nn.functional.linear(x, up), down)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[1:])


def _machine_key(hidden: int, inner: int) -> str:
    return "|".join(
        [
            _cpu_name(),
            f"torch {torch.__version__}",
            f"{torch.get_num_threads()} threads",
            f"{hidden}x{inner}",
        ]
    )


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 Linux), None where it has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this OS
        return 0.0


def _cpu_name() -> str:
    from loralab.runs.provenance import cpu_name

    return cpu_name()


def _cache_file() -> Path:
    from loralab.models.embedded import cache_dir

    return cache_dir() / "precision_probe.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _uses_gpu(trainer_cfg: Mapping[str, Any]) -> bool:
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()
