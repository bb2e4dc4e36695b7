"""The embedded default model scores the 200-problem ScienceQA test sample in under a minute.

In bfloat16 (``model.dtype=bfloat16``), as the default training run computes in bf16 too: on
this project's 2-core CPU (AVX512-BF16) that is about 3x faster than float32, which needs
~30-90 s for these 22k tokens depending on the machine's load.
"""

import time

import pytest
from conftest import compose_config

from loralab.evaluate import run, validate_eval_config


@pytest.mark.integration
def test_scienceqa_sample_in_score_mode_on_the_embedded_model(shared_data, tmp_path):
    source = shared_data / "scienceqa" / "hf_sample"
    cfg = compose_config(
        ["task=scienceqa", f"task.source={source}", "model.dtype=bfloat16"], name="eval"
    )
    validate_eval_config(cfg)
    assert cfg.model.name == "smollm2_135m" and cfg.mode == "score" and cfg.split == "test"
    started = time.perf_counter()
    outcome = run(cfg, tmp_path)
    elapsed = time.perf_counter() - started
    overall = outcome["summary"]["overall"]
    assert overall["n"] == 200 and overall["dropped"] == 0
    assert 0.2 < overall["accuracy"] < 1.0  # a real model, most questions have 2-3 options
    assert set(outcome["summary"]["subject"]) <= {
        "natural science",
        "social science",
        "language science",
    }
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "eval.md").is_file()
    assert elapsed < 60, f"took {elapsed:.0f} s"
