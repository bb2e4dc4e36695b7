"""Put a grid's generated tables into docs/results.md, so that the page shows exactly what
loralab-figures wrote to docs/results/<experiment>/ and nothing typed by hand.

Usage: python scripts/splice_results.py EXPERIMENT "ALT TEXT OF runs.png" ["ALT OF train_loss.png"]

The block goes right after the section's ``<!-- results:EXPERIMENT -->`` marker and ends at
``<!-- results:end -->``; a block spliced there before is replaced. tests/test_docs_numbers.py
checks that every committed grid's tables stand in the page as this script puts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
END = "<!-- results:end -->"


def block(experiment: str, alts: list[str], records: Path) -> str:
    """The tables of accuracy.md, claims.md and per_task.md where there is one (one heading
    level down), claims.png where loralab-figures drew it, the figures (runs.png, and
    train_loss.png where a second alt text is given) and links."""
    figures = [
        f"![{alt}](results/{experiment}/{name})"
        for alt, name in zip(alts, ("runs.png", "train_loss.png"), strict=False)
    ]
    claim_figure = (
        [f"![Each claim's effect with its 95 % interval](results/{experiment}/claims.png)", ""]
        if (records / "claims.png").exists()
        else []
    )
    accuracy = (records / "accuracy.md").read_text().strip()
    claims = (records / "claims.md").read_text().strip()
    by_task = records / "per_task.md"  # a grid on a split that mixes tasks
    per_task = (
        [by_task.read_text().strip().replace("### ", "#### ", 1), ""] if by_task.exists() else []
    )
    return "\n".join(
        [
            f"<!-- results:{experiment} -->",
            "",
            accuracy.replace("### ", "#### ", 1),
            "",
            claims.replace("### ", "#### ", 1),
            "",
            *per_task,
            *claim_figure,
            *figures,
            "",
            f"Records: [runs.csv](results/{experiment}/runs.csv) (a row per run), "
            f"[questions.csv](results/{experiment}/questions.csv) (each run's outcome on each test "
            "question, what the claims are computed from).",
            END,
        ]
    )


def splice(page: str, experiment: str, new_block: str) -> str:
    """``page`` with ``new_block`` at the experiment's marker, replacing an earlier one there."""
    marker = f"<!-- results:{experiment} -->"
    if page.count(marker) != 1:
        raise SystemExit(f"docs/results.md needs exactly one {marker} (found {page.count(marker)})")
    start = page.index(marker)
    after = page[start + len(marker) :]
    if after.startswith(f"\n\n#### {experiment}:"):
        return page[:start] + new_block + page[page.index(END, start) + len(END) :]
    return page[:start] + new_block + after


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit(__doc__)
    experiment, *alts = argv
    records = ROOT / "docs" / "results" / experiment
    if not (records / "claims.md").exists():
        raise SystemExit(
            f"{records} has no claims.md: run loralab-figures ... --out {records} first"
        )
    page = ROOT / "docs" / "results.md"
    page.write_text(splice(page.read_text(), experiment, block(experiment, alts, records)))
    print(f"docs/results.md: {experiment}'s tables from {records.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
