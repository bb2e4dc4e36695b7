"""Side-by-side timing of several steps, the peak memory of one step, and what they ran on.

Timing: rounds; each round runs every step once, in an order rotated (and reversed every other
round) so that no variant always follows the same neighbour, and times each call with `clock`:
- "wall": `time.perf_counter`, after a device synchronise on CUDA (the GPU default);
- "cpu": `time.process_time`, the CPU seconds (user + system, every thread) the process spent
  in the step. With one CPU thread this is the wall time minus the time the process waited for
  a core: on a small machine shared with other work that wait is most of the noise (with two
  other busy processes on 2 cores a step's wall time swung by 1.5x between rounds while its CPU
  time did not). Memory-bandwidth and cache contention still show up in it.
Both clocks are recorded for every call. After `min_rounds`, the run stops as
soon as every tracked ratio of medians moved by less than `tol` when the last round was added
("stable"), or when `max_rounds` rounds are done, or when one more round would overrun
`budget_s` (the stop reason is reported; a ratio that is not "stable" is noisier than its peers).

Peak memory (bytes) of a step = what is held before it (`static`: weights, buffers, adapter
parameters, optimizer state; counted per unique storage) + the highest net amount the step
allocates on top of that (activations, gradients, temporaries):
- CPU: from torch profiler memory events (every allocation and free of torch's CPU allocator,
  in time order; the running sum's maximum). Run in a separate, untimed step.
- CUDA: `torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()` around the step,
  after `reset_peak_memory_stats()`.
Allocations outside torch's allocator (Python objects, MKL/oneDNN scratch) are not counted.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from loralab.runs.provenance import device_name

CLOCKS = ("wall", "cpu")


@dataclass
class Timings:
    times: dict[str, list[float]]  # by the chosen clock
    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    clock: str
    rounds: int
    stopped: str  # stable | max_rounds | budget
    elapsed_s: float

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def spread(self, name: str) -> float:
        """(max - min) / median of one step's times: how noisy its median is."""
        values = self.times[name]
        return (max(values) - min(values)) / statistics.median(values)

    def ratio(self, numerator: str, denominator: str) -> float:
        return self.median(numerator) / self.median(denominator)


def interleave(
    steps: Mapping[str, Callable[[], None]],
    *,
    track: Sequence[tuple[str, str]],
    min_rounds: int,
    max_rounds: int,
    budget_s: float,
    tol: float = 0.02,
    clock: str = "wall",
    sync: Callable[[], None] = lambda: None,
    log: Callable[[str], None] | None = None,
) -> Timings:
    """Time every step once per round, interleaved, until the `track` ratios are stable."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    names = list(steps)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    times = cpu if clock == "cpu" else wall
    start = time.perf_counter()
    stopped = "max_rounds"
    for index in range(max_rounds):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        if index % 2:
            order.reverse()
        for name in order:
            sync()
            began, began_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            sync()
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
        done = index + 1
        elapsed = time.perf_counter() - start
        if log is not None:
            log(f"  round {done}: {elapsed:.0f} s")
        if done >= max(min_rounds, 2) and _stable(times, track, tol):
            stopped = "stable"
            break
        if done < max_rounds and elapsed + elapsed / done > budget_s:
            stopped = "budget"
            break
    rounds = len(next(iter(times.values())))
    return Timings(times, wall, cpu, clock, rounds, stopped, time.perf_counter() - start)


def _stable(times: dict[str, list[float]], track: Sequence[tuple[str, str]], tol: float) -> bool:
    for numerator, denominator in track:
        now = statistics.median(times[numerator]) / statistics.median(times[denominator])
        before = statistics.median(times[numerator][:-1]) / statistics.median(
            times[denominator][:-1]
        )
        if abs(now / before - 1) >= tol:
            return False
    return True


def step_peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Highest net allocation during one call of `step` (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with (
        _stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        step()
    events = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    ]
    events.sort(key=lambda event: event[0])  # stable: ties keep the recorded order
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def _stderr_silenced():
    """Kineto writes "profiler_start/stop" lines to file descriptor 2 (no setting turns them
    off); hide them for the duration of the profiled step. Exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def cpu_name() -> str:
    """The CPU's model name (as `lscpu` shows it) and core count."""
    return device_name("cpu")


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages: how busy the machine was (other work on its cores)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
