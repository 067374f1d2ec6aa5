"""filters/text_fast.py gives the numbers of the reference definitions in filters/text.py."""
import random

import numpy as np
import pytest

from filters import text as tf
from filters import text_fast as tn
from filters.wordlists import flagged_words, stopwords
from pipeline.config import load_config
from pipeline.schema import split_paragraphs

STOP, FLAGGED, SPAM = stopwords("en"), flagged_words("en"), frozenset({"share", "cookie", "login"})
LISTS = tf.WordLists(STOP, FLAGGED, SPAM)
HASHED = tn.HashedLists(STOP, FLAGGED, SPAM)


def assert_same(paragraphs, punctuation_min_tokens=12):
    measured = tn.measure(paragraphs, HASHED, punctuation_min_tokens)
    for i, paragraph in enumerate(paragraphs):
        expected = tf.metrics(paragraph, LISTS, punctuation_min_tokens)
        for name, value in expected.items():
            assert measured.metrics[name][i] == pytest.approx(value, abs=1e-12), (name, paragraph[:60])
        # the widest line in whitespace-separated pieces, which tells structure from prose
        assert measured.counts[7][i] == max(len(line.split()) for line in paragraph.split("\n")), paragraph[:60]
    cheap = tn.measure(paragraphs, HASHED, punctuation_min_tokens, char_repetition=False)
    assert np.isnan(cheap.metrics["char_repetition"]).all()
    for keep in (np.ones(len(paragraphs), bool), np.arange(len(paragraphs)) % 3 != 1):
        document = tn.document(measured, keep, 0)
        expected = tf.metrics("\n\n".join(p for p, k in zip(paragraphs, keep) if k), LISTS, 0)
        for name, value in expected.items():
            assert document[name] == pytest.approx(value, abs=1e-12), name
        assert tn.document(cheap, keep, 0, char_repetition=False) == {**document, "char_repetition": None}


def test_hand_made_paragraphs():
    assert_same(["The cat is on the mat.", "Share this! Share this! Share this! cookie login",
                 "a" * 40, "x", "Привет, мир! Это тест, не так ли? Да.", "don't --stop-- 123abc the end...",
                 "日本語のテキストです。日本語のテキストです。", "émoji 😀 and\ttabs\u00a0nbsp",
                 "我们今天去公园，天气很好。iPhoneケース ネイビー 価格：100円 ab-漢 漢-ab a漢b 人々 𠮷野家"])


def test_edge_cases():
    assert tn.measure([], HASHED, 12) is None and tn.measure([""], HASHED, 12) is None
    assert_same(["word"])
    assert_same(["...", "!!! ??? ,,, ;;; :::", "123 456 789", "word"])
    assert_same(["exactly10c", "nine char", "eleven char"])  # one 10-gram, none, two
    assert_same(["Привет мир, как дела?", "مرحبا بالعالم، كيف حالك؟", "สวัสดีชาวโลก", "नमस्ते दुनिया।",
                 "😀😀😀😀😀😀😀😀😀😀😀😀", "a" * 5000, "ab " * 700])


def test_random_texts_agree():
    # Random mixes of letters, CJK, digits, punctuation, emoji and whitespace: repeated pieces make
    # n-grams repeat, within a paragraph and across the blank lines of the document.
    rng = random.Random(7)
    alphabet = list("abcdeABC  \t\n.,;:?!'-0123") + ["日本", "語", "😀", "İ", "é", "the", "cat", "share"]
    for _ in range(150):
        pieces = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(8)]
        paragraphs = []
        for _ in range(rng.randint(1, 6)):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
            text = "\n".join(line for line in text.split("\n") if line.strip()).strip()
            if text:
                paragraphs.append(text)
        if paragraphs:
            assert_same(paragraphs)


def test_line_pieces_count_words_not_indentation():
    assert_same(["    indented code\n        deeper\tstill", "one two three four five six seven eight nine ten",
                 "a\u2003b\u00a0c\nd", "   ", "x\n\ny"])


def test_document_ngrams_across_blank_lines():
    # The document's 10-grams that span a blank line can equal 10-grams inside a paragraph (seen once,
    # or several times), or one another; paragraphs shorter than a 10-gram put several joints in one.
    assert_same(["we start here\nand go on", "we start here", "and go on\nwe start here\nthen",
                 "ok", "a", "we start here", "and go on and go on\nand go on"])


def test_real_pages_agree(shared_data):
    from demo.samples import extracted_docs

    for doc in extracted_docs():
        paragraphs = [p for t in doc["texts"] if t for p in split_paragraphs(t)]
        if tn.measure(paragraphs, HASHED, 12) is not None:
            assert_same(paragraphs)


def test_failing_matches_failed_check():
    cfg = load_config().filter.paragraph
    paragraphs = ["Too short", "This is a perfectly fine paragraph with enough words, and a comma.",
                  "login share cookie login share cookie login share", "THE THE THE THE THE THE THE THE THE"]
    table = tn.measure(paragraphs, HASHED, cfg.punctuation_min_tokens)
    expected = [tf.failed_check(tf.metrics(p, LISTS, cfg.punctuation_min_tokens), cfg) for p in paragraphs]
    assert tn.failing(table, cfg) == expected
    assert expected[0] == "words_low" and expected[1] is None


def test_dotted_capital_i_keeps_positions():
    assert tf.words_of("İstanbul is a city") == ["istanbul", "is", "a", "city"]
    assert_same(["İstanbul is a city in Türkiye, İzmir another.", "Second paragraph here."])


def test_lone_surrogates_fall_back():
    assert tn.measure(["broken \udc80 text"], HASHED, 0) is None
