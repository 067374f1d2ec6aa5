"""Extraction quality on real pages (numbers in the README and the issue note come from
`python -m bench.extract_quality`)."""
from tools.extract_eval import figure_scores, gold_scores


def test_gold_snippet_recall_on_real_pages(shared_data):
    from pipeline.config import load_config

    # The walk and its rules keep the main content (98.1% of `with` snippets, and 47.0% of `without`
    # ones); the main-content model then trades some of it for most of the boilerplate. Each page's own
    # cut (the default) keeps 93.2% and 17.4%, one threshold of 0.25 for all pages 96.1% and 27.8% (the
    # issue's targets are 95% and 15%: these are regression guards, not the goal).
    walk_only = gold_scores(shared_data, load_config(overrides=["extract.content_model.enabled=false"]).extract)
    missed = [(p["file"], p["missed"]) for p in walk_only["pages"] if p["missed"]]
    assert walk_only["with_recall"] >= 0.95, missed
    scores = gold_scores(shared_data)
    assert scores["with_recall"] >= 0.90 and scores["without_kept"] <= 0.22
    one_threshold = gold_scores(shared_data, load_config(overrides=["extract.content_model.threshold=0.25"]).extract)
    assert one_threshold["with_recall"] >= 0.93 and one_threshold["without_kept"] < walk_only["without_kept"]


def test_every_figure_stays_whole_with_its_caption(shared_data):
    scores = figure_scores(shared_data)
    assert scores["figures"] >= 20
    assert scores["whole"] == scores["captioned"] == scores["figures"], scores["missing"]
