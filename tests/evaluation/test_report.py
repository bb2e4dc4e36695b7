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
