"""The final table: overall, per subject / grade / task, the task mean, unparsable counts."""

from loralab.evaluation.report import summarize, to_markdown


def _result(correct, prediction="A", **groups):
    return {"gold": "A", "prediction": prediction, "correct": correct} | groups


def test_scienceqa_breakdowns_in_natural_grade_order():
    results = [
        _result(True, subject="natural science", grade="grade10"),
        _result(False, subject="natural science", grade="grade2"),
        _result(True, subject="language science", grade="grade2"),
        _result(False, prediction=None, subject="social science", grade="grade11"),
    ]
    summary = summarize(results)
    assert summary["overall"] == {
        "n": 4,
        "correct": 2,
        "accuracy": 0.5,
        "unparsable": 1,
        "dropped": 0,
    }
    assert list(summary["grade"]) == ["grade2", "grade10", "grade11"]
    assert summary["grade"]["grade2"]["accuracy"] == 0.5
    assert summary["subject"]["social science"]["unparsable"] == 1
    assert "task" not in summary and "task_mean" not in summary
    table = to_markdown(summary, "scienceqa/test")
    assert "| overall | 4 | 50.0% | 1 |" in table
    assert "| grade: grade10 | 1 | 100.0% | 0 |" in table
    assert table.index("grade2 ") < table.index("grade10")


def test_commonsense_mean_is_the_plain_mean_of_tasks():
    results = [_result(True, task="boolq")] * 3 + [_result(False, task="boolq")]
    results += [_result(False, task="piqa")]
    summary = summarize(results, dropped=2)
    assert summary["task"]["boolq"]["accuracy"] == 0.75 and summary["task"]["piqa"]["accuracy"] == 0
    assert summary["task_mean"] == 0.375  # not the pooled 3/5
    table = to_markdown(summary, "commonsense/test")
    assert "| mean of tasks | | 37.5% | |" in table
    assert "2 over-long records dropped" in table


def test_reference_rates_show_a_model_that_learned_only_the_answer_prior():
    """Chance, the majority answer and the share of the most common prediction, so that a model
    answering answer1 to everything reads as that, not as learning."""
    golds = ["answer1"] * 3 + ["answer2", "answer3"]
    results = [
        {"gold": g, "prediction": "answer1", "correct": g == "answer1", "options": 4} for g in golds
    ]
    results[-1] = dict(results[-1], options=2)
    rates = summarize(results)["reference"]
    assert rates["majority_answer"] == "answer1" and rates["majority_rate"] == 0.6
    assert rates["top_prediction"] == "answer1" and rates["top_prediction_share"] == 1.0
    assert rates["chance"] == (4 * 0.25 + 0.5) / 5
    table = to_markdown(summarize(results), "obqa/test")
    assert "chance 30.0%; always answer1 (the most common answer) 60.0%;" in table
    assert "most common prediction answer1 (100.0% of answers)." in table
    unparsed = [dict(r, prediction=None, correct=False) for r in results]
    assert "no parsable prediction." in to_markdown(summarize(unparsed), "t")
