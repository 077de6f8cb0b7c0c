"""Every `leannet.x.y` the user docs and the code's docstrings cite exists: a module, or a name
in one. (docs/dev/ keeps the history of runs, where old names are marked as such.)"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"\bleannet(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.py")),
         *sorted((ROOT / "src" / "leannet").rglob("*.py"))]


def _cited() -> list[tuple[str, str]]:
    out = {}
    for f in FILES:
        for name in CITED.findall(f.read_text()):
            if "__mutmut_" in name:  # docs/testing.md's example of a mutant's name
                continue
            out.setdefault(name.rstrip("."), f.relative_to(ROOT).as_posix())
    return sorted(out.items())


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize(("name", "where"), _cited())
def test_a_cited_name_exists(name, where):
    assert _resolves(name), f"{where} cites {name}, which does not exist"
