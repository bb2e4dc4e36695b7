"""The embedded default model scores real ScienceQA test problems end to end.

Float32 (the eval default), a seeded sample of 100 of the 200 problems (about 30 s on 2 CPU
cores); no wall-clock assertion here, speed belongs in benchmarks/.
"""

import pytest

from loralab.cli.evaluate import run
from loralab.cli.validation import validate_config
from tests.helpers import compose_config


@pytest.mark.integration
def test_scienceqa_sample_in_score_mode_on_the_embedded_model(shared_data, tmp_path):
    source = shared_data / "scienceqa" / "hf_sample"
    overrides = ["task=scienceqa", f"task.source={source}", "task.max_examples.test=100"]
    cfg = compose_config(overrides, name="eval")
    validate_config(cfg, "eval")
    assert cfg.model.name == "smollm2_135m" and cfg.mode == "score" and cfg.split == "test"
    outcome = run(cfg, tmp_path)
    overall = outcome["summary"]["overall"]
    assert overall["n"] == 100 and overall["dropped"] == 0
    assert 0.2 < overall["accuracy"] < 1.0  # a real model, most questions have 2-3 options
    assert set(outcome["summary"]["subject"]) <= {
        "natural science",
        "social science",
        "language science",
    }
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "eval.md").is_file()
