"""OBELICS's text metrics on hand-computed examples and edge cases."""
import json

import pytest

from filters import text as tf
from filters.image import banned_word, prefilter_reason
from pipeline.config import load_config

LISTS = tf.WordLists(frozenset({"the", "a", "is", "on"}), frozenset({"damn"}), frozenset({"share", "cookie"}))


def test_words_strip_punctuation_digits_and_symbols_at_both_ends():
    assert tf.words_of("Hello, World! 123abc don't --x--y-- ... 2020 émoji😀") == \
        ["hello", "world", "abc", "don't", "x--y", "émoji"]
    assert tf.words_of("") == [] and tf.words_of("!!! 123 ...") == []


def test_char_repetition_ratio_hand_computed():
    # "aaaaaaaaaaaa" (12 a): three 10-grams, all "aaaaaaaaaa": distinct 1, singletons 0, k = min(1, 1) = 1
    assert tf.char_repetition_ratio("a" * 12) == 1.0
    # "abcdefghijk": two distinct 10-grams seen once: k = min(1, 0) = 0 → 0
    assert tf.char_repetition_ratio("abcdefghijk") == 0.0
    # "abcabcabcabcab" (14 chars): 5 10-grams, 3 distinct (abcabcabca ×2, bcabcabcab ×2, cabcabcabc ×1);
    # k = min(⌊√3⌋ = 1, 3 − 1 = 2) = 1 → top count 2 of 5
    assert tf.char_repetition_ratio("abcabcabcabcab") == pytest.approx(2 / 5)
    assert tf.char_repetition_ratio("short") == 0.0


def test_word_repetition_ratio_hand_computed():
    words = "a b c d e a b c d e f".split()  # 7 5-grams; "a b c d e" twice → 2/7
    assert tf.word_repetition_ratio(words) == pytest.approx(2 / 7)
    assert tf.word_repetition_ratio(["one", "two"]) == 0.0


def test_special_stop_flagged_spam_punctuation():
    assert tf.special_char_ratio("ab, 1!") == pytest.approx(4 / 6)  # ",", " ", "1", "!"
    assert tf.special_char_ratio("") == 0.0
    assert tf.share_in(["the", "cat", "is", "on", "a", "mat"], LISTS.stopwords) == pytest.approx(4 / 6)
    # tokens: hello , world . → 4 tokens, 2 punctuation
    assert tf.punctuation_ratio("hello, world.") == 0.5
    assert tf.punctuation_ratio("too short.", min_tokens=12) == 1.0


def test_paragraph_checks():
    cfg = load_config().filter
    m = [tf.metrics(t, LISTS, cfg.paragraph.punctuation_min_tokens)
         for t in ["One two", "Share this cookie now please share", "!!! ??? ..."]]
    assert tf.failed_check(m[0], cfg.paragraph) == "words_low"
    assert m[1]["spam_words"] == pytest.approx(3 / 6)
    assert m[2]["words"] == 0 and tf.failed_check(m[2], cfg.paragraph) == "words_low"


def test_spam_bound_is_inclusive_as_in_obelics():
    cfg = load_config(overrides=["filter.paragraph.min_stopwords=null"]).filter
    m = {"words": 25, "spam_words": 0.12}
    assert tf.failed_check(m, cfg.paragraph) == "spam_words_high"


def test_non_latin_scripts():
    words = tf.words_of("Привет, мир! Это тест. 你好世界")
    assert words == ["привет", "мир", "это", "тест", "你", "好", "世", "界"]  # no spaces in Chinese: characters
    assert tf.words_of("東京タワーは高い。iPhoneケース") == ["東", "京", "タ", "ワ", "ー", "は", "高", "い", "iphone",
                                                     "ケ", "ー", "ス"]
    assert tf.special_char_ratio("你好世界") == 0.0


def test_obelics_lists_on_real_pages(shared_data):
    folder = shared_data / "words" / "obelics"
    stop = frozenset(json.loads((folder / "stopwords.json").read_text()))
    flagged = frozenset(json.loads((folder / "flagged_words.json").read_text()))
    assert len(stop) == 301 and len(flagged) == 67
    from pipeline.extract.record import extract_file

    doc = extract_file(shared_data / "html" / "trafilatura" / "blog.python.org.html", "https://blog.python.org/")
    text = "\n\n".join(t for t in doc["texts"] if t)
    words = tf.words_of(text)
    m = tf.metrics(text, tf.WordLists(stop, flagged, frozenset()))
    assert m["stopwords"] == pytest.approx(sum(w in stop for w in words) / len(words))
    assert 0.3 < m["stopwords"] < 0.7  # English prose
    assert m["flagged_words"] == 0.0


def test_image_prefilters_match_words_not_substrings():
    cfg = load_config().filter.image
    banned = frozenset(cfg.banned_words)
    assert banned_word("/Essex/silicon-valley.jpg", banned) is None
    assert banned_word("/img/siteLogo.png", banned) == "logo"
    assert banned_word("http://x.org/icons/a.png", banned) == "icon"
    assert prefilter_reason("http://x.org/a.jpg", {"width_attr": 100, "height_attr": 300}, cfg, banned) == "image_too_small"
    assert prefilter_reason("http://x.org/a.jpg", {"width_attr": 900, "height_attr": 300}, cfg, banned) == "image_aspect_ratio"
    assert prefilter_reason("http://x.org/a.SVG", None, cfg, banned) == "image_extension"
    assert prefilter_reason("http://x.org/photo.jpg", {"width_attr": None, "height_attr": None}, cfg, banned) is None


def test_edge_cases_empty_one_word_all_punctuation():
    for text, words in (("", 0), ("word", 1), ("!!! ... ???", 0), ("   \n\n  ", 0)):
        m = tf.metrics(text, LISTS, 0)
        assert m["words"] == words
        assert 0.0 <= m["special_characters"] <= 1.0 and m["char_repetition"] == 0.0
    assert tf.metrics("!!! ... ???", LISTS)["special_characters"] == 1.0
    assert tf.metrics("", LISTS)["punctuation"] == 1.0  # no tokens: not tested


def test_thresholds_and_metrics_are_one_declaration():
    """A bound that names no metric, or a metric the thresholds cannot bound, fails at import."""
    import dataclasses

    from filters.text import METRICS, check_bounds
    from pipeline.config import TextThresholds
    from pipeline.schema import SCORES_TYPE

    fields = [f.name for f in dataclasses.fields(TextThresholds)]
    check_bounds(fields)
    with pytest.raises(TypeError, match=r"naming no metric \['max_stopword'\]"):
        check_bounds(fields + ["max_stopword"])
    with pytest.raises(TypeError, match=r"missing \['max_spam_words'\]"):
        check_bounds([f for f in fields if f != "max_spam_words"])
    assert [SCORES_TYPE.field(i).name for i in range(SCORES_TYPE.num_fields)] == [m.name for m in METRICS] + ["perplexity"]


def test_one_shape_rule_before_and_after_download():
    """filters.image.shape_reason judges HTML attributes (one side may be unknown) and decoded images alike."""
    from filters.image import shape_reason

    assert shape_reason(100, None, 150, None, 0.5, 2.0) == "too_small"   # one attribute is enough
    assert shape_reason(None, 400, 150, None, 0.5, 2.0) is None           # aspect needs both sides
    assert shape_reason(900, 300, 150, 20000, 0.5, 2.0) == "aspect_ratio"
    assert shape_reason(30000, 20000, 150, 20000, 0.5, 2.0) == "too_big"
    assert shape_reason(0, 500, 150, 20000, 0.5, 2.0) == "too_small"      # a decoded zero-width image
    assert shape_reason(10, 10, None, None, None, None) is None
    cfg = load_config().filter.image
    assert prefilter_reason("http://x.org/a.jpg", {"width_attr": 0, "height_attr": 600}, cfg, frozenset()) is None
    assert prefilter_reason("http://x.org/a.jpg", {"width_attr": 100, "height_attr": 0}, cfg, frozenset()) == \
        "image_too_small"
