"""loralab-train's own settings (conf/train.yaml): the run's seed, resume, checkpoint and
non-finite policies, planted faults, and what a sweep optimises."""

from __future__ import annotations

from dataclasses import dataclass

from loralab.cli.settings.fields import Rule, one_of, setting, whole

NONFINITE_POLICIES = ("stop", "skip")
KILL_SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit; Lightning seeds NumPy with the run's seed


@dataclass(frozen=True)
class CheckpointSettings:
    """checkpoint: what is saved during the run, and which adapter is kept at its end."""

    select_by: str | None = setting(
        Rule(
            lambda v: v is None or (isinstance(v, str) and v.startswith("val/")),
            "null or a validation metric such as val/loss or val/acc",
        ),
        "the adapter of the best validation pass by this metric is tested and saved as "
        "adapter/ (the last as adapter_last/); null = the last",
    )
    select_mode: str = setting(one_of(("min", "max")), "which way select_by is better")
    every_n_steps: int = setting(
        whole(0, note="0 = end only"),
        "adapter + optimizer + RNG + data position, every N steps and at the end",
    )


@dataclass(frozen=True)
class DebugSettings:
    """debug: faults planted on purpose, to watch the run's guards work."""

    nan_at_step: int | None = setting(
        whole(1, nullable=True), "a NaN loss at this step (the non-finite guard)"
    )
    kill_at_step: int | None = setting(
        whole(1, nullable=True), "send kill_signal to the run at this step (resume)"
    )
    kill_signal: str = setting(
        Rule(lambda v: v in KILL_SIGNALS, "one of " + ", ".join(KILL_SIGNALS)),
        "SIGKILL (a crash) | SIGTERM (a scheduler's stop) | SIGINT (Ctrl+C)",
    )


def _metric(value) -> bool:
    return value is None or (isinstance(value, str) and "/" in value)


def _resume(value) -> bool:
    return value in (None, "auto") or str(value).endswith(".ckpt")


@dataclass(frozen=True)
class RunSettings:
    """The run itself (top-level keys of conf/train.yaml)."""

    seed: int = setting(
        Rule(
            lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED,
            f"an integer in [0, {MAX_SEED}] (what NumPy accepts)",
        ),
        "seeds data order, adapter init and dropout",
    )
    plugins: list = setting(
        Rule(lambda v: True, "a list of module names"),  # loralab.cli.plugins checks them
        "your Python modules, imported first: they register tasks, optimizer variants or "
        "adapter kinds (docs/extending.md)",
    )
    optimized_metric: str | None = setting(
        Rule(_metric, "a logged metric such as val/acc or val/loss (or null)"),
        "a metrics.csv column whose last value the run returns to a sweeper (a diverged run "
        "returns the worst value)",
    )
    run_name: str = setting(None, "the run's name (its folder under outputs/)")
    resume: str | None = setting(
        Rule(_resume, "null, auto or a path to a .ckpt file"),
        "auto: this run directory's newest readable checkpoint, if any | a .ckpt path (must "
        "fit this config)",
    )
    nonfinite: str = setting(
        one_of(NONFINITE_POLICIES),
        "stop: exit 3, the last good checkpoint kept | skip: count and drop the update",
    )
