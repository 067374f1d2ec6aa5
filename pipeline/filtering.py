"""The filter stage on one document: language ID, image pre-filters, paragraph filters, document
filters. Pure: a row in, the filtered row and a drop reason (or None) out, node drops counted."""
from __future__ import annotations

import dataclasses

import numpy as np

from filters import image as image_filters
from filters import lang as lang_id
from filters import text as text_filters
from filters import text_fast
from filters.wordlists import flagged_words, stopwords
from pipeline.config import FilterConfig
from pipeline.schema import aligned_lists, split_paragraphs
from pipeline.stats import UnitStats


class FilterContext:
    """What filtering needs loaded once per process: the language model, word lists, KenLM."""

    def __init__(self, cfg: FilterConfig):
        self.cfg = cfg
        self.model = lang_id.load_model(cfg.lang.model)
        self.keep = frozenset(cfg.lang.keep)
        self.spam = frozenset(w.lower() for w in cfg.words.spam)
        self.banned_image_words = frozenset(cfg.image.banned_words)
        self._stop_paths = tuple(sorted(cfg.words.stopwords.items()))
        self.flag_paths = tuple(sorted(cfg.words.flagged.items()))
        self._hashed: dict[str | None, text_fast.HashedLists] = {}
        self._thresholds: dict[str | None, tuple] = {}
        self._check_stopword_lists()
        self.kenlm = None
        if cfg.perplexity.model:
            from filters.perplexity import load_kenlm

            self.kenlm = load_kenlm(cfg.perplexity.model)

    def _check_stopword_lists(self) -> None:
        """A kept language without a stop-word list would fail every paragraph's stop-word floor:
        refuse that at start-up instead of emptying the output."""
        for lang in self.keep:
            paragraph, document, _ = self.thresholds(lang)
            floors = paragraph.min_stopwords, document.min_stopwords
            if any(floors) and not stopwords(lang, self._stop_paths):
                raise ValueError(
                    f"filter.lang.keep has {lang!r}, which has no stop-word list: give one with "
                    f"filter.words.stopwords.{lang}=PATH, or turn its floors off with "
                    f"filter.language_overrides.{lang}.paragraph.min_stopwords=null (and .document.)")

    def lists(self, lang: str | None) -> text_filters.WordLists:
        return text_filters.WordLists(stopwords(lang, self._stop_paths), flagged_words(lang, self.flag_paths),
                                      self.spam)

    def thresholds(self, lang: str | None):
        """(paragraph, document, structure paragraph) thresholds for `lang`, with its language_overrides
        applied; a structure paragraph answers to the paragraph thresholds less the prose-only ones."""
        if lang not in self._thresholds:
            paragraph, document = self.cfg.thresholds(lang)
            structure = dataclasses.replace(paragraph, **{k: None for k in PROSE_ONLY})
            self._thresholds[lang] = (paragraph, document, structure)
        return self._thresholds[lang]

    def hashed_lists(self, lang: str | None) -> text_fast.HashedLists:
        if lang not in self._hashed:
            lists = self.lists(lang)
            self._hashed[lang] = text_fast.HashedLists(lists.stopwords, lists.flagged, lists.spam)
        return self._hashed[lang]


# The bounds a structure paragraph is not held to (a long one still answers to max_words).
PROSE_ONLY = tuple(f"{side}_{m.name}" for m in text_filters.METRICS if m.name in text_filters.PROSE_METRICS
                   for side in m.bounds if (side, m.name) != ("max", "words"))


_SENTENCE_END = (".", "!", "?", ":", ";")


def is_heading(line: str, capitals: float) -> bool:
    """A line that reads as a title: it does not end a sentence, and at least `capitals` of its words
    that start with a letter start with a capital ("5 Cheap and Easy Chicken Casseroles You'll Want to
    Make"). 0 = never."""
    if not capitals or line.rstrip().endswith(_SENTENCE_END):
        return False
    words = line.split()
    most_lower = (1 - capitals) * len(words)  # prose gives itself away within a few words
    lower = upper = caseless = 0
    for w in words:
        if w[0].islower():
            lower += 1
            if lower > most_lower:
                return False
        elif w[0].isupper():
            upper += 1
        elif w[0].isalpha():  # a letter without case (CJK, Arabic)
            caseless += 1
    letters = lower + upper + caseless
    return letters >= 3 and upper >= capitals * letters


def is_structure(paragraph: str, line_words: int, capitals: float = 0.0) -> bool:
    """A paragraph most of whose lines are shorter than `line_words` words, titles (is_heading) or table
    rows: headings, list items, a table, code (whose indentation is not words), a list with the odd long
    item. A row is a line of cells joined by " | ", as the walk renders them, in a table of two rows or
    more, or of three cells or more on its own. A menu flattened into one long line is not structure, and
    answers to the prose rules; nor is one "ID | password" line."""
    lines = paragraph.split("\n")
    table = " | " in paragraph and sum(" | " in line for line in lines) >= 2
    prose_at = (len(lines) + 1) // 2  # this many long lines make it prose: stop counting there
    long = 0
    for line in lines:
        # a line of n words has at least 2n - 1 characters: measure before splitting
        if len(line) >= 2 * line_words - 1 and len(line.split()) >= line_words \
                and not (" | " in line and table or line.count(" | ") >= 2) and not is_heading(line, capitals):
            long += 1
            if long == prose_at:
                return False
    return True


def paragraph_verdicts(paragraphs: list[str], ctx: FilterContext, lang: str | None):
    """(the failed check of each paragraph or None where it passes, the compiled measurements or None,
    which paragraphs are structure)."""
    thresholds, _, structure_thresholds = ctx.thresholds(lang)
    line_words, capitals = ctx.cfg.structure_line_words, ctx.cfg.heading_capitals
    measured = text_fast.measure(paragraphs, ctx.hashed_lists(lang), thresholds.punctuation_min_tokens,
                                 char_repetition=thresholds.max_char_repetition is not None)
    if measured is not None:
        structure = (measured.counts[7] < line_words).tolist() if line_words else [False] * len(paragraphs)
        for i in np.flatnonzero(measured.counts[7] >= line_words) if line_words else ():
            p = paragraphs[i]  # it has a long line: are most of its lines short, rows or titles?
            if "\n" in p or " | " in p:
                structure[i] = is_structure(p, line_words, capitals)
            elif capitals:  # one long line: what is_structure would say, without splitting it again
                structure[i] = is_heading(p, capitals)
        verdicts = text_fast.failing(measured, thresholds)
        if any(structure):
            verdicts = [w if s else v for v, w, s in zip(verdicts, text_fast.failing(measured, structure_thresholds), structure)]
        return verdicts, measured, structure
    structure = [bool(line_words) and is_structure(p, line_words, capitals) for p in paragraphs]
    lists = ctx.lists(lang)
    return [text_filters.failed_check(text_filters.metrics(p, lists, thresholds.punctuation_min_tokens),
                                      structure_thresholds if s else thresholds)
            for p, s in zip(paragraphs, structure)], None, structure


def document_scores(kept: list[bool], paragraphs: list[str], measured, ctx: FilterContext, list_lang: str | None,
                    lang: str | None) -> dict:
    """Every document-level metric of the kept paragraphs joined by blank lines; char_repetition only
    where the document thresholds of `lang` bound it (None otherwise: its 10-grams are the costliest)."""
    punctuation_min_tokens = ctx.thresholds(list_lang)[1].punctuation_min_tokens
    char_repetition = ctx.thresholds(lang)[1].max_char_repetition is not None
    if measured is not None:
        return text_fast.document(measured, np.array(kept, dtype=bool), punctuation_min_tokens, char_repetition)
    text = "\n\n".join(p for p, k in zip(paragraphs, kept) if k)
    scores = text_filters.metrics(text, ctx.lists(list_lang), punctuation_min_tokens)
    return scores if char_repetition else {**scores, "char_repetition": None}


def filter_document(row: dict, ctx: FilterContext, stats: UnitStats) -> tuple[dict, str | None]:
    """Filter one `docs` row: the image pre-filters and the paragraph rules, then the document rules on
    what is left. Node drops go to `stats.nodes` by reason, paragraph and image totals to `stats.tally`
    (paragraphs_in = paragraphs_out + Σ nodes[paragraph_*], and likewise for images)."""
    list_lang = word_list_language(row, ctx)
    paragraphs = [(slot, p) for slot, (text, image) in enumerate(zip(row["texts"], row["images"]))
                  if image is None for p in split_paragraphs(text)]
    paragraph_texts = [p for _, p in paragraphs]
    kept, measured, structure = judge_paragraphs(paragraph_texts, ctx, list_lang, stats)
    surviving: dict[int, list[str]] = {}
    for (slot, paragraph), keep in zip(paragraphs, kept):
        if keep:
            surviving.setdefault(slot, []).append(paragraph)
    items = []
    for slot, (text, image, meta) in enumerate(zip(row["texts"], row["images"], row["image_meta"])):
        if image is None:
            if slot in surviving:
                items.append(("\n\n".join(surviving[slot]), None, None))
            continue
        reason = image_filters.prefilter_reason(image, meta, ctx.cfg.image, ctx.banned_image_words)
        if reason:
            stats.nodes[reason] += 1
        else:
            items.append((None, image, meta))
    texts, images, image_meta = aligned_lists(items)
    stats.tally["images_in"] += sum(1 for i in row["images"] if i is not None)
    stats.tally["images_out"] += sum(1 for i in images if i is not None)
    measures = document_measures(row, texts, paragraph_texts, kept, structure, measured, ctx, list_lang)
    out = {**row, "texts": texts, "images": images, "image_meta": image_meta, **measures}
    return out, document_verdict(out, ctx)


GUESS_LINE_WORDS = 5
PROSE_SAMPLE_CHARS = 200  # less prose than this says too little about the language: read all the text


def word_list_language(row: dict, ctx: FilterContext) -> str | None:
    """The language whose word lists judge the paragraphs: the one kept language, or else a first guess
    on the raw text's sentences (_sentence_lines), or on the raw text where it has less than
    PROSE_SAMPLE_CHARS of them (Chinese and Japanese, which spaces do not split into words). The
    decisive language ID runs on the filtered text, once menus and language pickers are gone (dw.com's
    English article scores 0.28 "en" raw)."""
    if len(ctx.keep) == 1:
        return next(iter(ctx.keep))
    raw = "\n\n".join(t for t in row["texts"] if t)
    sentences = _sentence_lines(raw, ctx.cfg.lang.max_chars)
    told_by = sentences if len(sentences) >= PROSE_SAMPLE_CHARS else raw[: ctx.cfg.lang.max_chars or None]
    return lang_id.identify(told_by, ctx.model)[0]


def _sentence_lines(text: str, max_chars: int) -> str:
    """The text's lines of at least GUESS_LINE_WORDS words, up to max_chars (0: all): the first guess
    reads sentences, not the menu or language picker a page may open with (dw.com's English article
    opens with "Bulgarian Български", "Deutsch Aktuell" …, which a guess on its first characters
    calls German, and German stop words then reject its English paragraphs)."""
    out, size = [], 0
    for line in text.splitlines():
        if len(line.split()) >= GUESS_LINE_WORDS:
            out.append(line)
            size += len(line) + 1
            if max_chars and size >= max_chars:
                break
    return "\n".join(out)[: max_chars or None]


def judge_paragraphs(paragraphs: list[str], ctx: FilterContext, list_lang: str | None, stats: UnitStats):
    """(kept flag per paragraph, its measured metrics, structure flag per paragraph): the paragraph
    rules, then the repeat of an earlier paragraph, then, where configured, language ID per paragraph."""
    cfg = ctx.cfg
    verdicts, measured, structure = paragraph_verdicts(paragraphs, ctx, list_lang)
    kept = []
    seen: set[str] = set()
    long_enough = repeat_candidates(paragraphs, measured, cfg.repeated_paragraph_words)
    for paragraph, reason, candidate in zip(paragraphs, verdicts, long_enough):
        if reason is None and candidate:
            if paragraph in seen:
                reason = "repeated"
            seen.add(paragraph)
        if reason is None and cfg.lang.paragraph_level:
            p_lang, p_score = lang_id.identify(paragraph, ctx.model)
            if p_lang not in ctx.keep or p_score < cfg.lang.paragraph_min_score:
                reason = "lang"
        kept.append(reason is None)
        if reason:
            stats.nodes[f"paragraph_{reason}"] += 1
    stats.tally["paragraphs_in"] += len(paragraphs)
    stats.tally["paragraphs_out"] += sum(kept)
    return kept, measured, structure


def repeat_candidates(paragraphs: list[str], measured, min_words: int) -> list[bool]:
    """Which paragraphs are long enough (min_words words) to be removed when they repeat; none at 0."""
    if not min_words:
        return [False] * len(paragraphs)
    if measured is not None:
        return (measured.counts[3] >= min_words).tolist()
    return [len(text_filters.words_of(p)) >= min_words for p in paragraphs]


def document_measures(row: dict, texts: list, paragraphs: list[str], kept: list[bool], structure: list[bool],
                      measured, ctx: FilterContext, list_lang: str | None) -> dict:
    """lang, lang_score, scores (of the whole filtered document) and prose_scores (of its prose
    paragraphs alone), stored for kept and rejected documents alike."""
    cfg = ctx.cfg
    doc_text = "\n\n".join(t for t in texts if t)
    # Language is told by the prose: a language picker or a list of names is structure and says little.
    # A document that lost every paragraph still gets the language of its raw text, for the record.
    prose_kept = [k and not s for k, s in zip(kept, structure)]
    prose = "\n\n".join(p for p, k in zip(paragraphs, prose_kept) if k)
    told_by = prose if len(prose) >= PROSE_SAMPLE_CHARS else doc_text or "\n\n".join(t for t in row["texts"] if t)
    lang, lang_score = lang_id.identify(told_by[: cfg.lang.max_chars or None], ctx.model)
    scores = document_scores(kept, paragraphs, measured, ctx, list_lang, lang)  # doc_text is these, joined
    scores["perplexity"] = None
    if ctx.kenlm is not None:
        from filters.perplexity import perplexity

        scores["perplexity"] = perplexity(ctx.kenlm, doc_text)
    prose_scores = dict(scores) if prose_kept == kept else {
        **document_scores(prose_kept, paragraphs, measured, ctx, list_lang, lang), "perplexity": None}
    return {"lang": lang, "lang_score": lang_score, "scores": scores, "prose_scores": prose_scores}


def is_structure_document(prose_words: int, lang: str | None, prose_judge_words: int, flagged_paths=()) -> bool:
    """A document of structure: less than prose_judge_words words of prose (a listing, a product grid, a
    table of parts), in a language with a flagged-word list. It is not judged on the prose floors
    (filters.text.PROSE_FLOORS), as a structure paragraph is not; its length and word repetition still
    count, for a link farm repeats its keywords. In a language without a flagged-word list (Chinese and
    Japanese by default) the floors stay: nothing else would reject a spam page of link lines or a shop's
    menus. `flagged_paths`: filter.words.flagged as sorted (language, path) pairs."""
    return bool(prose_judge_words) and prose_words < prose_judge_words and bool(flagged_words(lang, flagged_paths))


def document_judged_scores(scores: dict, prose_scores: dict | None, lang: str | None, prose_judge_words: int,
                           flagged_paths=()) -> dict:
    """What the document rules judge (filters.text.judged_scores), a document of structure
    (is_structure_document) spared the prose floors. The verdict and the report's panels both read this."""
    structure = prose_scores is not None and is_structure_document(prose_scores["words"], lang, prose_judge_words,
                                                                     flagged_paths)
    return text_filters.judged_scores(scores, prose_scores, prose_judge_words, structure)


def document_verdict(doc: dict, ctx: FilterContext) -> str | None:
    """Why the filtered document is rejected, or None: the first document rule it fails."""
    cfg, scores = ctx.cfg, doc["scores"]
    if not any(t for t in doc["texts"]):
        return "no_text_left"
    images = sum(1 for i in doc["images"] if i is not None)
    if images < cfg.min_images:
        return "no_images_left"
    if cfg.max_image_positions and images > cfg.max_image_positions:
        return "too_many_image_positions"
    if doc["lang"] not in ctx.keep:
        return "lang_not_kept"
    if doc["lang_score"] < cfg.lang.min_score:
        return "lang_low_score"
    judged = document_judged_scores(scores, doc["prose_scores"], doc["lang"], cfg.prose_judge_words, ctx.flag_paths)
    reason = text_filters.failed_check(judged, ctx.thresholds(doc["lang"])[1])
    if reason:
        return f"doc_{reason}"
    if scores["perplexity"] is not None and scores["perplexity"] > cfg.perplexity.max:
        return "doc_perplexity_high"
    return None
