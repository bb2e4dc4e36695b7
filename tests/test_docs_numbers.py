"""Every reported figure comes from committed records: docs/results.md shows each grid's tables
exactly as loralab-figures wrote them to docs/results/<experiment>/, runs.csv agrees with the
per-question outcomes in questions.csv, and each effect and interval in the README's claims
table and in the docs' prose stands in a committed claims.md, between the runs it names."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
GRIDS = sorted(path.parent.name for path in RESULTS.glob("*/claims.md"))
NUMBER = r"[+−-]?\d+\.\d"
EFFECT = rf"({NUMBER}) \[({NUMBER}), ({NUMBER})\]"


def plain(number: str) -> str:
    """The README's typographic minus as claims.md writes it."""
    return number.replace("−", "-")


def claim_rows(grid: str) -> list[dict[str, str]]:
    """claims.md's table rows, by column."""
    rows = []
    for line in (RESULTS / grid / "claims.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 9 and cells[0] not in ("claim", "---"):
            columns = ("claim", "a", "b", "seeds", "effect", "interval", "resolves", "p", "verdict")
            rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def test_there_are_committed_grids_to_check():
    assert len(GRIDS) >= 3, GRIDS


@pytest.mark.parametrize("grid", GRIDS)
def test_the_results_page_shows_the_grid_s_tables_as_generated(grid):
    page = (ROOT / "docs" / "results.md").read_text()
    marker = f"<!-- results:{grid} -->"
    assert page.count(marker) == 1, f"docs/results.md lacks {marker}"
    shown = page[page.index(marker) : page.index("<!-- results:end -->", page.index(marker))]
    for table in ("accuracy.md", "claims.md", "per_task.md"):
        if not (RESULTS / grid / table).exists():  # per_task.md: only a split mixing tasks
            continue
        generated = (RESULTS / grid / table).read_text().strip().replace("### ", "#### ", 1)
        assert generated in shown, (
            f"docs/results.md's {grid} block differs from docs/results/{grid}/{table}: "
            f"run `python scripts/splice_results.py {grid} '<alt text>'`"
        )


@pytest.mark.parametrize("grid", GRIDS)
def test_runs_csv_agrees_with_the_per_question_outcomes(grid):
    """Each run's accuracy after training is its mean over questions.csv's column, its standard
    error the binomial one over the questions (lm-eval's, ddof 1), and before training it is the
    untrained model's column. The label answer form has `acc` alone (the decision token's pick):
    its other metrics are empty in runs.csv and absent from questions.csv."""
    with open(RESULTS / grid / "questions.csv") as file:
        questions = list(csv.DictReader(file))
    with open(RESULTS / grid / "runs.csv") as file:
        runs = list(csv.DictReader(file))
    n = len(questions)
    assert runs and len({q["question"] for q in questions}) == n
    for run in runs:
        assert int(run["test_size"]) == n
        for metric in ("acc", "acc_norm", "acc_per_token"):
            column = f"{run['variant']}/s{run['seed']}/{metric}"
            if metric != "acc" and run["answer_form"] == "label":
                assert run[f"{metric}_after"] == "" and column not in questions[0], run["run_dir"]
                continue
            right = sum(int(q[column]) for q in questions)
            mean = right / n
            assert float(run[f"{metric}_after"]) == pytest.approx(mean, abs=1e-12), run["run_dir"]
            stderr = math.sqrt(mean * (1 - mean) / (n - 1))
            assert float(run[f"{metric}_after_stderr"]) == pytest.approx(stderr, rel=1e-9)
            untrained = sum(int(q[f"untrained/{metric}"]) for q in questions) / n
            assert float(run[f"{metric}_before"]) == pytest.approx(untrained, abs=1e-12)


@pytest.mark.parametrize("grid", GRIDS)
def test_claims_md_follows_from_the_per_question_outcomes(grid):
    """Each claims row's effect (b − a: mean over seeds and questions, points), McNemar's exact
    p over the discordant (seed, question) pairs and verdict, recomputed here from
    questions.csv; the interval itself is a bootstrap draw, so only its sides are checked."""
    with open(RESULTS / grid / "questions.csv") as file:
        questions = list(csv.DictReader(file))

    def columns(run):  # the run's acc outcomes, one list per seed
        names = [c for c in questions[0] if c.startswith(f"{run}/") and c.endswith("/acc")]
        names = names or [f"{run}/acc"]  # the untrained model: one column
        return [[int(q[name]) for q in questions] for name in sorted(names)]

    for row in claim_rows(grid):
        a, b = columns(row["a"]), columns(row["b"])
        mean = lambda runs: sum(map(sum, runs)) / (len(runs) * len(questions))  # noqa: E731
        effect = 100 * (mean(b) - mean(a))
        shown = "0.0" if abs(effect) < 0.05 else f"{effect:+.1f}"
        assert row["effect"] == shown, (grid, row)
        low, high = (float(x) for x in row["interval"].strip("[]").split(", "))
        assert low <= float(row["effect"]) <= high
        verdict = "holds" if low > 0 else "reversed" if high < 0 else "not resolved at this size"
        assert row["verdict"] == verdict, (grid, row)
        if row["p"]:  # seeds paired: seed s of a against seed s of b
            pairs = [
                (x, y) for sa, sb in zip(a, b, strict=True) for x, y in zip(sa, sb, strict=True)
            ]
            b_only = sum(1 for x, y in pairs if (x, y) == (0, 1))
            a_only = sum(1 for x, y in pairs if (x, y) == (1, 0))
            n, k = a_only + b_only, min(a_only, b_only)
            p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
            if row["p"] == "< 1e-300":  # below what a float holds
                assert p < 1e-300, (grid, row)
            else:
                assert float(row["p"]) == pytest.approx(p, rel=5e-3), (grid, row)


def readme_claims() -> list[tuple[str, str]]:
    """(grid, effects cell) for each README claims row that names a footnoted setting."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("<!-- claims:start -->") : readme.index("<!-- claims:end -->")]
    footnotes = dict(
        re.findall(r"\(([a-z])\) .*?From\s+\[docs/results/([^/]+)/claims\.md\]", table, re.S)
    )
    found = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        note = re.search(r"\(([a-z])\)$", cells[1]) if len(cells) == 4 else None
        if note:
            found.append((footnotes[note.group(1)], cells[2]))
    return found


def named_effects(cell: str) -> list[tuple[str, str, str, str, str]]:
    """(a, b, effect, low, high) for each effect the cell gives: "B − A: e [l, h]" compares two
    runs, "Name e [l, h]" and ": e [l, h] (Name)" a run with the untrained model."""
    found = [(a, b, *e) for b, a, *e in re.findall(rf"(\S+) − (\S+): {EFFECT}", cell)]
    found += [("untrained", b, *e) for b, *e in re.findall(rf"(\w+) {EFFECT}", cell)]
    found += [("untrained", b, *e) for *e, b in re.findall(rf"(?<=[:,] ){EFFECT} \((\w+)\)", cell)]
    assert len(found) == len(re.findall(EFFECT, cell)), f"an effect without a name: {cell}"
    return found


SPELLED = {"LoRA+": "loraplus", "LoRA-RITE": "lorarite"}  # the papers' names of two optimizers


def names(run: str, name: str) -> bool:
    """Whether the run ("arc_e-moe_lora-radamw") is the README's name for it ("RAdamW")."""
    return SPELLED.get(name, name).lower() in run.split("-") or name == run == "untrained"


ADAPTERS = {"MoE-LoRA": "moe_lora", "LoRA r16": "lora"}  # a cell's labels, as runs name them


def by_adapter(cell: str) -> list[tuple[str | None, str]]:
    """(adapter, part) for each part of a cell that compares optimizers on two adapters
    ("MoE-LoRA: ...; LoRA r16: ..."); (None, cell) for a cell without such labels."""
    parts = re.split(rf"(?:^|; )({'|'.join(ADAPTERS)}): ", cell)
    if len(parts) == 1:
        return [(None, cell)]
    assert parts[0] == "", f"effects before the first adapter label: {cell}"
    return [(ADAPTERS[label], part) for label, part in zip(parts[1::2], parts[2::2], strict=True)]


def on(run: str, adapter: str | None) -> bool:
    """Whether the run ("arc_e-moe_lora-radamw") trained the adapter (None: any)."""
    return adapter is None or run == "untrained" or adapter in run.split("-")


def test_the_readme_s_claims_are_the_committed_ones():
    claims = readme_claims()
    assert {grid for grid, _ in claims} == set(GRIDS), "a committed grid without a README row"
    checked = 0
    for grid, cell in claims:
        rows = claim_rows(grid)
        for adapter, part in by_adapter(cell):
            for a, b, effect, low, high in named_effects(part):
                interval = f"[{plain(low)}, {plain(high)}]"
                match = [
                    row
                    for row in rows
                    if names(row["a"], a)
                    and names(row["b"], b)
                    and on(row["a"], adapter)
                    and on(row["b"], adapter)
                    and (row["effect"], row["interval"]) == (plain(effect), interval)
                ]
                assert match, (
                    f"README: {b} − {a}: {effect} {interval}"
                    + (f" on {adapter}" if adapter else "")
                    + f" is not in {grid}'s claims.md"
                )
                checked += 1
    assert checked >= 20, checked


def test_an_adapter_label_binds_the_effects_after_it():
    """The README's LoRA-optimizer cells name the adapter once for several effects."""
    cell = "MoE-LoRA: LoRA+ − AdamW: −0.3 [−1.2, +0.6]; LoRA r16: AdamW +1.0 [+0.1, +2.0]"
    assert by_adapter(cell) == [
        ("moe_lora", "LoRA+ − AdamW: −0.3 [−1.2, +0.6]"),
        ("lora", "AdamW +1.0 [+0.1, +2.0]"),
    ]
    assert on("arc_e-lora-adamw", "lora") and not on("arc_e-moe_lora-adamw", "lora")
    assert by_adapter("RSGD − SGD: +1.0 [+0.1, +2.0]") == [(None, "RSGD − SGD: +1.0 [+0.1, +2.0]")]


def test_every_signed_interval_in_the_docs_stands_in_a_claims_table():
    """The docs' prose restates effects ("−0.8 points [−1.7, +0.1]"): each must be one that a
    committed claims.md holds (or a per_task.md, a claim's effect on one task), so that no
    figure outlives a re-run."""
    intervals = {row["interval"] for grid in GRIDS for row in claim_rows(grid)}
    for per_task in RESULTS.glob("*/per_task.md"):
        found = re.findall(r"\[([+-]\d+\.\d), ([+-]\d+\.\d)\]", per_task.read_text())
        intervals |= {f"[{low}, {high}]" for low, high in found}
    for doc in ("README.md", "docs/results.md"):
        text = (ROOT / doc).read_text()
        for low, high in re.findall(r"\[([+−-]\d+\.\d), ([+−-]\d+\.\d)\]", text):
            interval = f"[{plain(low)}, {plain(high)}]"
            assert interval in intervals, (
                f"{doc}: {interval} is in no docs/results/*/claims.md or per_task.md"
            )
