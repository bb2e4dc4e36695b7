"""docs/ARCHITECTURE.md is checked against the code: every file it names exists, and every
module of the package is named there, so a newcomer's map cannot drift from the house."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "loralab"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def named_paths() -> set[str]:
    return set(re.findall(r"`([\w/.<>-]+\.(?:py|yaml|toml))`", DOC))


def test_every_file_the_map_names_exists():
    missing = []
    for name in named_paths():
        if "<" in name:  # a pattern such as cli/<command>.py
            continue
        candidates = [ROOT / name, PACKAGE / name, ROOT / "conf" / name]
        if not any(path.is_file() for path in candidates):
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {sorted(missing)}"


def test_every_module_of_the_package_is_on_the_map():
    named = {Path(name).as_posix().removeprefix("src/loralab/") for name in named_paths()}
    modules = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "conf" not in path.parts
    }
    assert modules - named == set(), "modules missing from docs/ARCHITECTURE.md"


def test_the_config_tree_is_at_the_top_level_and_the_package_carries_it():
    assert (ROOT / "conf" / "train.yaml").is_file()
    assert (PACKAGE / "conf").resolve() == (ROOT / "conf").resolve()
