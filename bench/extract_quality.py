"""Extraction quality on real pages: word F1 on the labelled WCXB pages, gold snippets, figure captions.

    python -m bench.extract_quality [SHARED_DATA_DIR]
    python -m bench.extract_quality --rules [SHARED_DATA_DIR]   # each extraction rule off; each filter rule off, each alone; the knobs cross-validated

WCXB's dev pages (1,358 in ../shared/data/wcxb) have their main content written out by hand: word F1 per page (the WCXB metric),
averaged per page type, for extract alone, extract + the default filter and extract + the OBELICS
preset. The main-content model is cross-validated by site (tools/content_model.py): each page is
extracted by a model trained without its domain. Trafilatura's evaluation pages come with `with`
snippets (main content that must survive) and `without` snippets (boilerplate that should not);
readability's pages hold <figure> images whose captions must reach image_meta and the text. Last line:
wcxb_f1=… wcxb_filtered_f1=… wcxb_obelics_f1=… with_recall=… without_kept=… filtered_with_recall=… …
"""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config import load_config
from tools.extract_eval import (
    KNOBS,
    LANGS,
    figure_scores,
    gold_scores,
    rule_costs,
    rule_trade_offs,
    wcxb_documents,
    wcxb_extract_rules,
    wcxb_knob_cv,
    wcxb_rule_costs,
    wcxb_scores,
)

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main(argv: list[str]) -> None:
    if "--rules" in argv:
        argv = [a for a in argv if a != "--rules"]
        data = Path(argv[0]) if argv else DEFAULT_DATA
        print("with = main-content snippets kept (higher is better), without = boilerplate kept (lower is better)")
        for name, g in rule_trade_offs(data, ["filter.lang.keep=[en,de,fr,zh]"]):
            print(f"   {name:32s} with {g['with_recall']:6.1%} ({g['with'][0]:3d})   without {g['without_kept']:6.1%} "
                  f"({g['without'][0]:3d})")
        pages, docs, models = wcxb_documents(data)  # the cross-validated extraction, once
        print("the extractor's rules after the model's cut, each off: WCXB F1 after extract / + default filter "
              "(worst page type), trafilatura with / without snippets after extract, then after the filter:")
        for name, r in wcxb_extract_rules(data, pages, docs, models):
            print(f"   {name:40s} {r['f1']:.4f} / {r['filtered_f1']:.4f} ({r['worst']:.3f})   with {r['with']:3d} "
                  f"without {r['without']:3d}   filtered: with {r['filtered_with']:3d} without {r['filtered_without']:3d}")
        print("WCXB word F1 after extract + default filter, with one filter rule off (all, worst page type):")
        for name, f1, worst in wcxb_rule_costs(pages, docs):
            print(f"   {name:40s} {f1:.4f}   {worst:.4f}")
        for knobs in KNOBS:
            cv, default, picks = wcxb_knob_cv(pages, docs, knobs)
            print(f"the filter's hand-set knobs ({', '.join(knobs)}) picked on four site-grouped folds, scored on "
                  f"the fifth: WCXB F1 after extract + filter {cv:.4f} (the defaults: {default:.4f}); picks {picks}")
        return
    data = Path(argv[0]) if argv else DEFAULT_DATA
    wcxb = wcxb_scores(data)
    print("WCXB word F1 / precision / recall per page type (main-content model cross-validated by site):")
    types = [t for t in wcxb["extract"] if t != "all"] + ["all"]
    print(f"   {'page type':14s}" + "".join(f"{name:>30s}" for name in wcxb))
    for t in types:
        print(f"   {t:14s}" + "".join(f"{s[t][0]:10.3f}{s[t][1]:10.3f}{s[t][2]:10.3f}" for s in wcxb.values()))
    g = gold_scores(data)
    for page in g["pages"]:
        if page["missed"] or page["leaked"]:
            print(f"{page['file']}: missed {page['missed']} leaked {page['leaked']}")
    print(f"with snippets found: {g['with'][0]}/{g['with'][1]} = {g['with_recall']:.1%}")
    print(f"without (boilerplate) snippets kept: {g['without'][0]}/{g['without'][1]} = {g['without_kept']:.1%}")
    from pipeline.filtering import FilterContext

    ctx = FilterContext(load_config(overrides=[LANGS]).filter)
    fg = gold_scores(data, filter_ctx=ctx)
    print(f"after extract + default filter (lang.keep [en,de,fr,zh]): with {fg['with_recall']:.1%} "
          f"({fg['with'][0]}/{fg['with'][1]}), without kept {fg['without_kept']:.1%} ({fg['without'][0]}/{fg['without'][1]})")
    for page in fg["pages"]:
        if page["missed"]:
            print(f"   {page['file']}: missed {page['missed']}")
    fate = rule_costs(data, ctx)
    print("what the filter did to each gold snippet (the cost and the use of each rule):")
    for kind in ("with", "without"):
        print(f"   {kind:8s} " + ", ".join(f"{k} {v}" for k, v in fate[kind].most_common()))
    f = figure_scores(data)
    print(f"figure images with their caption in image_meta: {f['captioned']}/{f['figures']}; whole (image, "
          f"caption in image_meta and in the text): {f['whole']}/{f['figures']} {f['missing'] or ''}")
    worst = min(wcxb["extract + default filter"][t][0] for t in types)
    print(f"wcxb_f1={wcxb['extract']['all'][0]:.4f} wcxb_filtered_f1={wcxb['extract + default filter']['all'][0]:.4f} "
          f"wcxb_obelics_f1={wcxb['extract + OBELICS preset']['all'][0]:.4f} wcxb_worst_type_filtered_f1={worst:.4f} "
          f"with_recall={g['with_recall']:.4f} without_kept={g['without_kept']:.4f} "
          f"filtered_with_recall={fg['with_recall']:.4f} filtered_without_kept={fg['without_kept']:.4f} "
          f"figures={f['figures']} figures_with_caption={f['captioned']} figures_whole={f['whole']}")


if __name__ == "__main__":
    main(sys.argv[1:])
