"""Extraction quality on real pages (numbers in the README and the issue note come from
`python -m bench.extract_quality`)."""
from bench.extract_quality import figure_scores, gold_scores


def test_gold_snippet_recall_on_real_pages(shared_data):
    scores = gold_scores(shared_data)
    missed = [(p["file"], p["missed"]) for p in scores["pages"] if p["missed"]]
    assert scores["with_recall"] >= 0.95, missed


def test_every_figure_image_keeps_its_caption(shared_data):
    scores = figure_scores(shared_data)
    assert scores["figures"] >= 20
    assert scores["captioned"] == scores["figures"], scores["missing"]
