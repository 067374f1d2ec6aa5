"""Extraction judged against labelled pages: word F1 on WCXB's hand-written main content (the
content model cross-validated by site), gold `with`/`without` snippets on trafilatura's evaluation
pages, and figure captions on readability's pages. `python -m bench.extract_quality` prints them; the
quality tests assert on them.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from pipeline.config import load_config
from pipeline.extract.decode import decode_html
from pipeline.extract.record import extract_file
from pipeline.extract.text import normalise_ws
from pipeline.stats import UnitStats


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def document_text(doc: dict) -> str:
    return _flat(" ".join(t for t in doc["texts"] if t))


def filtered(doc: dict, url: str, ctx) -> dict:
    """The document after the filter stage; a rejected document keeps no text."""
    from pipeline.filtering import filter_document

    row = {**doc, "doc_id": url, "url": url}
    out, reason = filter_document(row, ctx, UnitStats())
    return {"texts": [], "images": [], "image_meta": []} if reason else out


def gold_scores(data: Path, cfg=None, filter_ctx=None) -> dict:
    """Per-page and total counts of gold snippets found in the extracted (and, given a
    pipeline.filtering.FilterContext, filtered) text."""
    folder = data / "html" / "trafilatura"
    gold = json.loads((folder / "gold-snippets.json").read_text())
    pages, with_found, with_total, without_found, without_total = [], 0, 0, 0, 0
    for url, entry in sorted(gold.items()):
        doc = extract_file(folder / entry["file"], url, cfg)
        if filter_ctx is not None and doc["texts"]:
            doc = filtered(doc, url, filter_ctx)
        text = document_text(doc)
        hit = [s for s in entry["with"] if _flat(s) in text]
        leak = [s for s in entry["without"] if _flat(s) in text]
        with_found += len(hit)
        with_total += len(entry["with"])
        without_found += len(leak)
        without_total += len(entry["without"])
        pages.append({"file": entry["file"], "missed": [s for s in entry["with"] if s not in hit], "leaked": leak})
    return {"with_recall": with_found / with_total, "without_kept": without_found / without_total,
            "with": (with_found, with_total), "without": (without_found, without_total), "pages": pages}


def rule_costs(data: Path, ctx) -> dict:
    """For every gold snippet, what the filter did to it: kept, or the paragraph rule (or document
    rule) that removed it. Shows which OBELICS rule costs how much content and removes how much
    boilerplate."""
    from filters import lang as lang_id
    from pipeline.filtering import filter_document, paragraph_verdicts
    from pipeline.schema import split_paragraphs

    folder = data / "html" / "trafilatura"
    gold = json.loads((folder / "gold-snippets.json").read_text())
    fate = {"with": Counter(), "without": Counter()}
    for url, entry in sorted(gold.items()):
        doc = extract_file(folder / entry["file"], url)
        paragraphs = [p for t in doc["texts"] if t for p in split_paragraphs(t)]
        _, reason = filter_document({**doc, "doc_id": url, "url": url}, ctx, UnitStats()) \
            if paragraphs else (None, "no_text")
        lang = lang_id.identify("\n\n".join(paragraphs)[:1000], ctx.model)[0]
        verdicts = paragraph_verdicts(paragraphs, ctx, lang)[0] if paragraphs else []
        for kind in ("with", "without"):
            for snippet in entry[kind]:
                found = [v for p, v in zip(paragraphs, verdicts) if _flat(snippet) in _flat(p)]
                if not found:
                    outcome = "not in one extracted paragraph"
                elif all(v is not None for v in found):
                    outcome = f"paragraph_{found[0]}"
                else:
                    outcome = reason or "kept"
                fate[kind][outcome] += 1
    return fate


RULES = ("min_words", "max_words", "max_char_repetition", "max_word_repetition", "max_special_characters",
         "min_stopwords", "max_flagged_words", "min_punctuation", "max_spam_words")


def rule_trade_offs(data: Path, base: list[str]) -> list[tuple[str, dict]]:
    """Gold scores after the filter with each rule switched off (at paragraph and document level
    alike), then with every rule off but one: what each rule costs in content and buys in boilerplate
    removal when the others stay (or go)."""
    from pipeline.filtering import FilterContext

    def off(rules) -> list[str]:
        return [f"filter.{level}.{rule}=null" for rule in rules for level in ("paragraph", "document")]

    rows = [("every rule on", gold_scores(data, filter_ctx=FilterContext(load_config(overrides=base).filter)))]
    for rule in RULES:
        ctx = FilterContext(load_config(overrides=[*base, *off([rule])]).filter)
        rows.append((f"without {rule}", gold_scores(data, filter_ctx=ctx)))
    for rule in RULES:
        ctx = FilterContext(load_config(overrides=[*base, *off(r for r in RULES if r != rule)]).filter)
        rows.append((f"only {rule}", gold_scores(data, filter_ctx=ctx)))
    return rows


def figure_scores(data: Path, cfg=None) -> dict:
    """Images inside <figure> in the readability pages, and how many came out with their caption in
    image_meta (`captioned`) and whole: the image kept, its caption in image_meta and the caption's
    text in the document (`whole`)."""
    figures = captioned = whole = 0
    missing = []
    for source in sorted((data / "html" / "readability").glob("*/source.html")):
        url = f"https://{source.parent.name}.example.org/article/index.html"
        html, _ = decode_html(source.read_bytes())
        tree = LexborHTMLParser(html)
        expected = []
        for figure in tree.css("figure"):
            caption = figure.css_first("figcaption")
            if caption is not None and figure.css_first("img") is not None and normalise_ws(caption.text()):
                expected.append(normalise_ws(caption.text()))
        doc = extract_file(source, url, cfg)
        got = {m["caption"] for m in doc["image_meta"] if m and m["caption"]}
        text = "\n".join(t for t in doc["texts"] if t)
        figures += len(expected)
        for caption in expected:
            captioned += caption in got
            whole += caption in got and caption in text
            if caption not in got or caption not in text:
                missing.append((source.parent.name, caption[:60], "image_meta" if caption in got else "-",
                                "text" if caption in text else "-"))
    return {"figures": figures, "captioned": captioned, "whole": whole, "missing": missing}


OBELICS_PRESET = Path(__file__).resolve().parent.parent / "configs" / "obelics.yaml"
# The trafilatura pages are in many languages; the filter keeps the ones the bench can judge.
LANGS = "filter.lang.keep=[en,de,fr,zh]"


def wcxb_documents(data: Path):
    """(the WCXB pages, their documents as extracted by a main-content model that never saw their site,
    the fold models that extracted them: tools.content_model.fold_models' result)."""
    from tools import content_model as tcm

    pages = tcm.load_pages(data)
    tcm.walk_pages(pages, tcm.model_config())
    models = tcm.fold_models(pages)
    return pages, tcm.cross_validate(pages, trained=models), models


# The extractor's rules after the model's cut, each switched off (extract settings).
EXTRACT_RULES = {"table rule off (table_max_words 0)": ["extract.content_model.table_max_words=0"],
                 "figure rule off (figure_max_words 0)": ["extract.content_model.figure_max_words=0"],
                 "tail rule off": ["extract.tail.max_words=0"],
                 "lead-in rule off": ["extract.lead_ins.max_words=0"],
                 "repeat rule off (repeated_block_words 0)": ["extract.repeated_block_words=0"],
                 "one threshold of 0.25 for every page": ["extract.content_model.threshold=0.25"]}


def wcxb_extract_rules(data: Path, pages, docs, models) -> list[tuple[str, dict]]:
    """(setting, {WCXB F1 after extraction and after the default filter, worst page type after the
    filter, trafilatura `with`/`without` snippets before and after the filter}) for the default and
    each rule of EXTRACT_RULES switched off, by the same cross-validated models."""
    from pipeline.filtering import FilterContext
    from tools import content_model as tcm

    ctx = FilterContext(load_config(overrides=[LANGS]).filter)
    rows = []
    for name, overrides in [("default", []), *EXTRACT_RULES.items()]:
        setting_docs = tcm.cross_validate(pages, cfg=tcm.model_config(*overrides), trained=models) \
            if overrides else docs
        extracted, filtered_ = wcxb_summary(pages, setting_docs), wcxb_summary(pages, setting_docs, ctx)
        full = load_config(overrides=overrides).extract
        g, fg = gold_scores(data, full), gold_scores(data, full, filter_ctx=ctx)
        rows.append((name, {"f1": extracted["all"][0], "filtered_f1": filtered_["all"][0],
                            "worst": min(v[0] for v in filtered_.values()), "with": g["with"][0],
                            "without": g["without"][0], "filtered_with": fg["with"][0],
                            "filtered_without": fg["without"][0]}))
    return rows


def filtered_docs(pages, docs, ctx) -> list[tuple]:
    """Each page's (texts, images, image_meta) after the filter of `ctx` (rejected: no text)."""
    out = []
    for page, (texts, images, meta) in zip(pages, docs):
        doc = {"title": page.title, "texts": texts, "images": images, "image_meta": meta}
        kept = filtered(doc, page.url, ctx) if texts else doc
        out.append((kept["texts"], kept["images"], kept["image_meta"]))
    return out


def wcxb_summary(pages, docs, ctx=None) -> dict:
    """{page type: (F1, precision, recall)} of `docs`, after the filter of `ctx` when one is given."""
    from tools import content_model as tcm

    return tcm.summary(pages, docs if ctx is None else filtered_docs(pages, docs, ctx))


def wcxb_scores(data: Path) -> dict:
    """{setting: {page type: (F1, precision, recall)}} over the WCXB pages, the model cross-validated."""
    from pipeline.filtering import FilterContext

    pages, docs, _ = wcxb_documents(data)
    return {"extract": wcxb_summary(pages, docs),
            "extract + default filter": wcxb_summary(pages, docs, FilterContext(load_config(overrides=[LANGS]).filter)),
            "extract + OBELICS preset": wcxb_summary(pages, docs, FilterContext(
                load_config([OBELICS_PRESET], overrides=[LANGS]).filter))}


def wcxb_rule_costs(pages, docs) -> list[tuple[str, float, float]]:
    """(setting, WCXB F1 after extract + default filter, worst page type's F1) with each rule of the
    default filter switched off in turn, at paragraph and at document level apart: what each rule
    costs on pages whose main content is known to be good. `pages, docs` from wcxb_documents."""
    from pipeline.filtering import FilterContext

    default = load_config(overrides=[LANGS]).filter
    settings = [("default filter", [])]
    for level in ("paragraph", "document"):
        settings += [(f"{level} {rule} off", [f"filter.{level}.{rule}=null"]) for rule in RULES
                     if getattr(getattr(default, level), rule) is not None]
    settings += [("lang.min_score 0", ["filter.lang.min_score=0"]),
                 ("every document rule off", [f"filter.document.{rule}=null" for rule in RULES])]
    rows = []
    for name, overrides in settings:
        scores = wcxb_summary(pages, docs, FilterContext(load_config(overrides=[LANGS, *overrides]).filter))
        rows.append((name, float(scores["all"][0]), float(min(v[0] for v in scores.values()))))
    return rows


# The filter's hand-set knobs in two groups, each cross-validated with the other at its defaults (their
# product would be 1,728 filter runs).
KNOBS = ({"filter.prose_judge_words": (0, 20, 50, 100), "filter.repeated_paragraph_words": (0, 10),
          "filter.lang.min_score": (0.5, 0.65, 0.8), "filter.heading_capitals": (0, 0.6, 0.75),
          "filter.document.max_word_repetition": (0.5, 0.7)},
         {"filter.paragraph.min_stopwords": (0.3, 0.2, 0.15), "filter.document.min_stopwords": (0.35, 0.3, 0.25),
          "filter.paragraph.max_special_characters": (0.3, 0.4), "filter.document.max_special_characters": (0.275, 0.3),
          "filter.paragraph.min_punctuation": (0.001, None)})


def wcxb_knob_cv(pages, docs, knobs: dict, folds: int = 5) -> tuple[float, float, list[dict]]:
    """(cross-validated F1, the default's F1, the setting each fold picked): the filter's knobs in `knobs`
    chosen on the other folds' pages by mean F1 after extract + filter, scored on the fold's own.
    Folds are grouped by site, as the content model's are. `pages, docs` from wcxb_documents."""
    import functools
    import itertools

    import numpy as np

    from pipeline.filtering import FilterContext
    from tools import content_model as tcm

    fold = np.array(tcm.site_folds(pages, folds))
    grid = [dict(zip(knobs, values)) for values in itertools.product(*knobs.values())]
    page_f1 = []
    for setting in grid:
        overrides = [f"{k}={'null' if v is None else v}" for k, v in setting.items()]
        ctx = FilterContext(load_config(overrides=[LANGS, *overrides]).filter)
        page_f1.append(tcm.page_scores(pages, filtered_docs(pages, docs, ctx))[:, 0])
    cv, picks = np.zeros(len(pages)), []
    for k in range(folds):
        best = max(range(len(grid)), key=lambda g: page_f1[g][fold != k].mean())
        picks.append(grid[best])
        cv[fold == k] = page_f1[best][fold == k]
    defaults = load_config().to_dict()
    at_default = grid.index({k: functools.reduce(dict.__getitem__, k.split("."), defaults) for k in knobs})
    return float(cv.mean()), float(page_f1[at_default].mean()), picks
