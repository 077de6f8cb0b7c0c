"""docs/models.md stays honest: every model listed, every >2% gap from the paper explained."""

from pathlib import Path

import pytest

import leannet
from leannet.report import deviation, model_rows, paper_form

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"


@pytest.fixture(scope="module")
def rows():
    return model_rows()


def test_every_large_deviation_has_a_note(rows):
    unexplained = []
    for r in rows:
        for ours, paper in ((paper_form(r, "params_m"), r["paper_params_m"]),
                            (paper_form(r, "macs_m"), r["paper_macs_m"])):
            d = deviation(ours, paper)
            if d is not None and abs(d) > 0.02 and not r["note"]:
                unexplained.append(f"{r['name']}: ours {ours:.2f} vs paper {paper}")
    assert not unexplained, unexplained


def test_every_model_has_a_published_source(rows):
    assert all(r["source"] for r in rows)


def test_docs_table_lists_every_model():
    text = DOCS.read_text()
    missing = [n for n in leannet.list_models() if f"`{n}`" not in text]
    assert not missing, f"run `make docs`: docs/models.md lacks {missing}"


def test_deviation_rounding():
    assert deviation(1.64, 1.6) == 0.0
    assert deviation(1.70, 1.6) == pytest.approx(0.0625)
    assert deviation(5.0, None) is None
