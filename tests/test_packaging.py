"""A plain (non-editable) install carries everything a run needs: the wheel holds the Hydra
config tree, and `loralab-train` from the installed files works in any directory."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_trains_from_another_directory(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("loralab-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    tree = {
        f"loralab/{p.relative_to(ROOT / 'src' / 'loralab')}"
        for p in (ROOT / "src" / "loralab" / "conf").rglob("*.yaml")
    }
    assert tree and tree <= shipped, sorted(tree - shipped)[:5]

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "LORALAB_CACHE": str(tmp_path / "cache")}  # before the checkout
    where = subprocess.run(
        [sys.executable, "-c", "import loralab; print(loralab.CONF_DIR)"],
        capture_output=True, text=True, cwd=elsewhere, env=dict(os.environ, **env),
    )  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr

    helped = run_cli("loralab.cli.train", ["--help"], elsewhere, **env)
    assert helped.returncode == 0 and "experiment" in helped.stdout, helped.stderr[-2000:]
    args = ["experiment=smoke", "trainer.max_steps=2", "logger=csv", "hydra.run.dir=run"]
    trained = run_cli("loralab.cli.train", args, elsewhere, **env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (elsewhere / "run" / "adapter" / "adapter.safetensors").is_file()
    assert (elsewhere / "run" / ".hydra" / "config.yaml").is_file()
