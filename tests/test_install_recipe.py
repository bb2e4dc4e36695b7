"""`make setup` installs the CPU build of torch without a GPU and PyPI's CUDA build (with
bitsandbytes) on a GPU machine, without editing files (dry runs of the Makefile's recipe)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def install_line(*variables: str) -> str:
    done = subprocess.run(
        ["make", "-n", "-B", "setup", *variables], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if "pip install --quiet -c" in x]
    return line


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_gpu_machine_gets_the_cuda_build_and_bitsandbytes():
    line = install_line("GPU=1")
    assert "-c constraints/gpu.txt" in line and "'.[dev,nf4]'" in line
    assert "torch===2.13.0" in (ROOT / "constraints" / "gpu.txt").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_cpu_machine_gets_the_cpu_build_and_an_optional_wheel_index():
    line = install_line("GPU=")
    assert "-c constraints/cpu.txt" in line and "'.[dev]'" in line
    assert "--extra-index-url" not in line
    index = install_line("GPU=", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in index
