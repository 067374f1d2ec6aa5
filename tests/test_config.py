import pytest

from pipeline.config import load_config, parse_override


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
