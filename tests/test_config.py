import dataclasses
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.typed_yaml import parse_override


def test_defaults_load_with_types():
    cfg = load_config()
    assert isinstance(cfg.extract.max_payload_bytes, int)
    assert isinstance(cfg.extract.dom.drop_tags, tuple)
    assert "script" in cfg.extract.dom.drop_tags


def test_set_overrides_scalars_and_lists(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("extract:\n  max_depth: 7\n")
    cfg = load_config([overlay], ["extract.dom.drop_tags=[nav,form]", "extract.max_seconds_per_page=0.5"])
    assert cfg.extract.max_depth == 7
    assert cfg.extract.dom.drop_tags == ("nav", "form")
    assert cfg.extract.max_seconds_per_page == 0.5


def test_typos_and_wrong_types_fail_loudly():
    with pytest.raises(ValueError, match="unknown key"):
        load_config(overrides=["extract.max_dept=5"])
    with pytest.raises(ValueError, match="integer"):
        load_config(overrides=["extract.max_depth=deep"])
    with pytest.raises(ValueError, match="key=value"):
        parse_override("extract.max_depth")


def test_effective_config_round_trips():
    cfg = load_config(overrides=["spark.conf={spark.executor.memory: 4g}"])
    assert cfg.to_dict()["spark"]["conf"] == {"spark.executor.memory": "4g"}


OBELICS = Path(__file__).resolve().parent.parent / "configs" / "obelics.yaml"


def test_obelics_preset_is_obelics_filter_exactly():
    cfg = load_config([OBELICS]).filter
    assert cfg.structure_line_words == 0  # every paragraph judged as prose
    assert dataclasses.asdict(cfg.paragraph) == {
        "min_words": 4, "max_words": 1000, "max_char_repetition": 0.1, "max_word_repetition": 0.1,
        "max_special_characters": 0.3, "min_stopwords": 0.3, "max_flagged_words": 0.01, "min_punctuation": 0.001,
        "punctuation_min_tokens": 12, "max_spam_words": 0.12}
    assert dataclasses.asdict(cfg.document) == {
        "min_words": 10, "max_words": 2000, "max_char_repetition": 0.1, "max_word_repetition": 0.2,
        "max_special_characters": 0.275, "min_stopwords": 0.35, "max_flagged_words": 0.01, "min_punctuation": 0.03,
        "punctuation_min_tokens": 0, "max_spam_words": None}
    assert cfg.thresholds("zh")[1].max_words == 4000
    # OBELICS's safety rule: one unsafe image removes the whole document
    assert load_config([OBELICS]).images.nsfw.action == "drop_document"


def test_default_filter_keeps_long_documents_and_structure():
    cfg = load_config().filter
    assert cfg.document.max_words is None and cfg.paragraph.max_words is None
    assert cfg.thresholds("zh")[1].max_words is None and cfg.structure_line_words > 0
