"""``predictions.jsonl``: one line per evaluated question, so that any figure can be recomputed
and two evaluations compared question by question (a paired test), not only by their means.

A line holds the question's id, its gold option (index and label), its breakdown keys
(subject, grade, task), the option picked under each metric (``picks``: metric -> option index,
null where a generated answer was unparsable) and, per mode, what the picks were made from:
each option's summed log-likelihood, token, character and byte counts where options are scored
whole; the generated text and the label parsed from it in generate mode.
"""

from __future__ import annotations

import json
from pathlib import Path

from loralab.evaluation.report import BREAKDOWNS


def prediction_line(result: dict) -> dict:
    """The predictions.jsonl line of one `predict.predict_split` result."""
    line = {"id": result.get("id"), "gold_index": result["gold_index"], "gold": result["gold"]}
    line |= {key: result[key] for key in BREAKDOWNS if key in result}
    line["picks"] = result["picks"]
    if "output" in result:  # generate mode
        line |= {"output": result["output"], "parsed": result["prediction"]}
    if "option_scores" in result:
        line["options"] = result["option_scores"]
    return line


def write_predictions(path: Path, results: list[dict]) -> None:
    """``results`` as predictions.jsonl at ``path``."""
    lines = (json.dumps(prediction_line(result)) for result in results)
    path.write_text("".join(line + "\n" for line in lines))
