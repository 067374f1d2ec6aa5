"""OBELICS's text-quality metrics as pure functions, with its definitions: the readable reference.

Words: split on whitespace, lower-cased, stripped of non-letters (punctuation, digits, symbols,
emoji) at both ends; tokens with no letter vanish. Chinese and Japanese put no spaces between words,
so there each Han, Hiragana or Katakana character is a word of its own (a whole sentence would
otherwise be one "word", and every word-based rule would fail it). The filter stage computes the same numbers for a
whole document at once with filters/text_fast.py, which is tested against these functions.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

# Scripts written without spaces: Hiragana, Katakana, CJK ideographs (with extension A, the
# compatibility block and the supplementary planes), half-width Katakana.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d\U00020000-\U0003134f"
# A word is one CJK character, or a core from a letter to a letter inside one whitespace-delimited
# token with no CJK character in it.
_WORD = re.compile(rf"[{CJK}]|[^\W\d_{CJK}](?:[^\s{CJK}]*[^\W\d_{CJK}])?")
_LETTERS = re.compile(r"[^\W\d_]+")  # everything else is a special character
_WORD_TOKENS = re.compile(r"[\w']+")
_PUNCT_CHARS = ".,;:?!"


def lower(text: str) -> str:
    """Lower case that keeps the length: "İ" (U+0130, the one character whose str.lower() is two)
    becomes a plain "i", so positions in the text and its lower case agree."""
    return text.replace("İ", "i").lower()


def words_of(text: str) -> list[str]:
    return _WORD.findall(lower(text))


def special_char_ratio(text: str) -> float:
    """Share of characters that are not letters: punctuation, digits, whitespace, symbols, emoji."""
    return len(_LETTERS.sub("", text)) / len(text) if text else 0.0


def share_in(words: list[str], vocabulary: frozenset) -> float:
    """Stop-word, flagged-word and spam-word ratios: the share of words found in a list."""
    return sum(map(vocabulary.__contains__, words)) / len(words) if words else 0.0


def _punctuation_counts(text: str) -> tuple[int, int]:
    punct = sum(map(text.count, _PUNCT_CHARS))
    return len(_WORD_TOKENS.findall(text)) + punct, punct


def punctuation_ratio(text: str, min_tokens: int = 0) -> float:
    """Punctuation tokens (, ; : ? ! .) over all tokens (runs of word characters or apostrophes, and
    single punctuation marks); 1.0, i.e. untested, below `min_tokens` tokens."""
    tokens, punct = _punctuation_counts(text)
    return punct / tokens if tokens >= max(min_tokens, 1) else 1.0


def char_repetition_ratio(text: str, n: int = 10) -> float:
    """The sum of the top-k character n-gram counts over all n-gram counts, with
    k = min(⌊√distinct⌋, distinct − singletons). Texts shorter than n score 0."""
    counts = sorted(Counter(text[i: i + n] for i in range(len(text) - n + 1)).values(), reverse=True)
    if not counts:
        return 0.0
    k = min(math.isqrt(len(counts)), len(counts) - sum(1 for c in counts if c == 1))
    return sum(counts[:k]) / sum(counts)


def word_repetition_ratio(words: list[str], n: int = 5) -> float:
    """The share of word n-grams that occur more than once."""
    counts = Counter(tuple(words[i: i + n]) for i in range(len(words) - n + 1)).values()
    total = sum(counts)
    return sum(c for c in counts if c > 1) / total if total else 0.0


@dataclass(frozen=True)
class WordLists:
    stopwords: frozenset
    flagged: frozenset
    spam: frozenset


@dataclass(frozen=True)
class Metric:
    """A text metric, declared once: the bounds the config may set (`min_<name>`, `max_<name>` in
    pipeline.config.TextThresholds), its type in the `scores` column, and how its upper bound cuts."""
    name: str
    bounds: tuple[str, ...]
    integer: bool = False
    inclusive_max: bool = False  # OBELICS removes spam at ratio >= 0.12, the rest above the bound


METRICS = (
    Metric("words", ("min", "max"), integer=True),
    Metric("char_repetition", ("max",)),
    Metric("word_repetition", ("max",)),
    Metric("special_characters", ("max",)),
    Metric("stopwords", ("min",)),
    Metric("flagged_words", ("max",)),
    Metric("punctuation", ("min",)),
    Metric("spam_words", ("max",), inclusive_max=True),
)
BOUND_SETTINGS = frozenset({"punctuation_min_tokens"})  # a setting of a metric, not a bound
# What only prose can be held to: a heading, a list item, a table row or code has few words, few stop
# words, little punctuation, many digits and symbols, and repeats its neighbours' words.
PROSE_METRICS = ("words", "char_repetition", "word_repetition", "special_characters", "stopwords", "punctuation")


# What tells prose from a list of names, prices and titles: a document of structure is not judged on it.
PROSE_FLOORS = ("special_characters", "stopwords", "punctuation")


def judged_scores(scores: dict, prose_scores: dict | None, prose_judge_words: int, structure: bool = False) -> dict:
    """The numbers the document rules judge: the prose metrics of the document's prose paragraphs when
    they hold prose_judge_words words (0 = never), else of its whole text; the rest always of the whole.
    A document of `structure` (pipeline.filtering.is_structure_document) is not judged on the prose
    floors: they are None."""
    if structure:
        return {**scores, **{name: None for name in PROSE_FLOORS}}
    if not prose_judge_words or not prose_scores or prose_scores["words"] < prose_judge_words:
        return scores
    return {**scores, **{name: prose_scores[name] for name in PROSE_METRICS}}


def check_bounds(fields) -> None:
    """Raise unless `fields` (a thresholds config's field names) are exactly the metrics' bounds: a
    bound naming no metric would otherwise be silently off."""
    fields, expected = set(fields), {f"{bound}_{m.name}" for m in METRICS for bound in m.bounds}
    extra, missing = fields - expected - BOUND_SETTINGS, expected - fields
    if extra or missing:
        raise TypeError(f"text thresholds and filters.text.METRICS disagree: bounds naming no metric "
                        f"{sorted(extra)}, metric bounds missing {sorted(missing)}")


def bound(thresholds, metric: Metric, side: str):
    return getattr(thresholds, f"{side}_{metric.name}") if side in metric.bounds else None


def metrics(text: str, lists: WordLists, punctuation_min_tokens: int = 0) -> dict:
    """Every metric of one text, straight from the definitions above."""
    words = words_of(text)
    return {
        "words": len(words),
        "char_repetition": char_repetition_ratio(text),
        "word_repetition": word_repetition_ratio(words),
        "special_characters": special_char_ratio(text),
        "stopwords": share_in(words, lists.stopwords),
        "flagged_words": share_in(words, lists.flagged),
        "punctuation": punctuation_ratio(text, punctuation_min_tokens),
        "spam_words": share_in(words, lists.spam),
    }


def failed_check(values: dict, thresholds) -> str | None:
    """The first metric outside its bounds (a TextThresholds config), or None. A bound of null is off."""
    for metric in METRICS:
        value = values.get(metric.name)
        if value is None:
            continue
        low, high = bound(thresholds, metric, "min"), bound(thresholds, metric, "max")
        if low is not None and value < low:
            return f"{metric.name}_low"
        if high is not None and (value > high or (metric.inclusive_max and value >= high)):
            return f"{metric.name}_high"
    return None
