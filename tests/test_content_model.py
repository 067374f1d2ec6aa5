"""The main-content model: its file, the block features it reads on hand-built pages, its decisions."""
from collections import Counter

import numpy as np

from pipeline.config import load_config
from pipeline.extract import content_model as cm
from pipeline.extract.dom import DomRules
from pipeline.extract.features import FEATURES, LOG_WORDS
from pipeline.extract.record import extract_document
from pipeline.extract.walk import page_blocks

PROSE = ("The river rose overnight, and by morning the lower streets of the town were under water. "
         "Residents who had lived there for decades said they had never seen it climb so fast, "
         "and the council opened the school hall for families who had to leave their homes. ")
ARTICLE = f"""<html><head><title>The river rose overnight</title></head><body>
<div class="top-links"><ul>{''.join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(12))}</ul></div>
<article class="post-content"><h1>The river rose overnight</h1>
{''.join(f'<p>{PROSE}</p>' for _ in range(5))}
<img src="/flood.jpg" alt="Flooded street">
<p>{PROSE}</p></article>
<div class="more-stories"><ul>{''.join(f'<li><a href="/r{i}">Read more: story number {i}</a></li>' for i in range(10))}</ul>
<img src="/thumb.jpg"></div>
<div class="discussion"><p><a href="/u/1">jo</a> · 2 hours ago</p><p><a href="/reply">Reply</a></p></div>
</body></html>"""


def walked(html, overrides=()):
    cfg = load_config(overrides=["extract.content_model.enabled=false", *overrides]).extract
    return page_blocks(html, "https://news.example.org/2025/river.html", cfg, DomRules(cfg.dom), Counter())


def features_of(html):
    title, _, blocks, contexts = walked(html)
    return blocks, dict(zip(FEATURES, blocks.features(contexts, title).T))


def test_shipped_model_loads_and_is_small():
    assert cm.DEFAULT_PATH.stat().st_size < 1_000_000
    model = cm.load()
    assert model.stage1.w1.shape[0] == len(FEATURES)
    assert model.stage2.w1.shape[0] == len(FEATURES) + cm.score_features(np.zeros(3)).shape[1]


def test_inference_equals_the_two_networks_as_trained():
    model = cm.load()
    x = np.random.default_rng(0).normal(size=(300, len(FEATURES))) * 3
    p1 = model.stage1(x)
    written = model.stage2(np.hstack([x, cm.score_features(p1)]))
    assert np.allclose(model.scores(x), written, rtol=0, atol=1e-12)


def test_a_model_for_other_features_is_refused(tmp_path):
    model = cm.load()
    path = tmp_path / "m.npz"
    model.save(path)
    data = dict(np.load(path))
    data["features"] = data["features"][:-1]
    np.savez(path, **data)
    try:
        cm.ContentModel.load(path)
    except ValueError as exc:
        assert "retrain" in str(exc)
    else:
        raise AssertionError("a model trained on other features loaded")


def test_blocks_are_paragraphs_items_rows_and_images():
    _, _, blocks, _ = walked("<h2>Head</h2><p>One <a href=x>link</a> two</p><ul><li>a</li><li>b</li></ul>"
                             "<table><tr><td>k</td><td>v</td></tr></table><img src=p.jpg><pre>x = 1\ny = 2</pre>")
    assert blocks.texts == ["Head", "One link two", "a", "b", "k | v", "https://news.example.org/2025/p.jpg",
                            "x = 1\ny = 2"]
    assert blocks.is_image == [False, False, False, False, False, True, False]
    assert blocks.link_chars[1] == len("link")


def test_features_on_a_hand_built_page():
    blocks, f = features_of(ARTICLE)
    texts = blocks.texts
    menu = texts.index("Section 0")
    heading = texts.index("The river rose overnight")
    prose = texts.index(PROSE.strip())
    related = texts.index("Read more: story number 0")
    reply = texts.index("Reply")
    assert f["link_density"][menu] == 1.0 and f["link_density"][prose] == 0.0
    assert f["in_li"][menu] == 1.0 and f["in_article"][prose] == 1.0 and f["in_article"][menu] == 0.0
    assert f["kind_h1"][heading] == 1.0 and f["kind_p"][prose] == 1.0
    assert f["title_overlap"][heading] == 1.0
    assert f["ends_punct"][prose] == 1.0 and f["log_words"][prose] > f["log_words"][menu]
    # class words: "post-content" above the prose says content, "more-stories" boilerplate, "top-links" nothing
    assert f["name_nearest"][prose] == 1.0 and f["name_content"][prose] == 2.0
    assert f["name_nearest"][related] == -1.0 and f["name_nearest"][menu] == f["name_nearest"][reply] == 0.0
    assert f["page_has_article"][0] == 1.0
    assert 0 < f["position"][related] < 1 and f["position"][menu] == 0.0


def test_model_keeps_the_article_and_drops_menus_related_and_comments():
    # The article is one paragraph six times: the repeat rule would keep it once (tested on its own below).
    cfg = load_config(overrides=["extract.repeated_block_words=0"]).extract
    drops = Counter()
    doc = extract_document(ARTICLE, "https://news.example.org/2025/river.html", cfg, DomRules(cfg.dom), drops)
    text = "\n".join(t for t in doc["texts"] if t)
    assert text.count(PROSE.strip()) == 6 and "The river rose overnight" in text
    assert "Section 3" not in text and "Read more" not in text and "Reply" not in text
    images = [u for u in doc["images"] if u]
    assert images == ["https://news.example.org/flood.jpg"]  # the related card's thumbnail goes with it
    assert drops["boilerplate"] >= 20 and drops["boilerplate_image"] == 1


def test_images_go_or_stay_with_the_text_around_them():
    is_image = [False, True, False, True, True, False, True]
    scores = np.array([0.9, 0.0, 0.1, 0.0, 0.0, 0.1, 0.0])
    assert cm.keep_blocks(scores, is_image, 0.5).tolist() == [True, True, False, False, False, False, False]
    scores = np.array([0.1, 0.0, 0.1, 0.0, 0.0, 0.9, 0.0])
    assert cm.keep_blocks(scores, is_image, 0.5).tolist() == [False, False, False, True, True, True, True]


def test_each_page_gets_the_cut_its_scores_expect_the_best_f1_from():
    words = np.array([100.0, 80.0, 50.0])
    # Sure of two paragraphs: the third, at 0.3, would cost more precision than it brings recall.
    sure = np.array([0.95, 0.9, 0.3])
    assert cm.page_threshold(sure, words) == 0.9
    # Unsure of all three alike: keeping all three expects the best F1 (a fixed 0.3 would keep one).
    unsure = np.array([0.3, 0.28, 0.25])
    assert cm.page_threshold(unsure, words) == 0.25
    # A few doubtful words: more likely no main content at all than any choice's expected F1.
    assert cm.page_threshold(np.array([0.21, 0.05]), np.array([3.0, 1.0])) == np.inf
    # Many doubtful blocks: some main content is all but certain, and the floor (min_threshold) decides.
    assert cm.page_threshold(np.full(60, 0.1), np.full(60, 5.0)) == 0.1
    assert cm.page_threshold(np.array([]), np.array([])) == np.inf


def test_the_page_cut_never_goes_under_the_floor_and_a_fixed_threshold_replaces_it():
    model = cm.load()
    title, _, blocks, contexts = walked(ARTICLE)
    features = blocks.features(contexts, title)
    scores = model.scores(features)
    words = np.expm1(features[:, LOG_WORDS])
    cut = cm.page_threshold(scores, words)
    assert cm.kept_by_scores(scores, words, blocks.is_image, None, 0.0).tolist() == \
        cm.keep_blocks(scores, blocks.is_image, cut).tolist()
    assert not cm.kept_by_scores(scores, words, blocks.is_image, None, 1.01).any()
    assert cm.kept_by_scores(scores, words, blocks.is_image, 0.0, 1.01).all()
    # The features' word column is the block's word count.
    prose = blocks.texts.index(PROSE.strip())
    assert round(float(np.expm1(features[prose, LOG_WORDS]))) == len(PROSE.split())


def test_switched_off_the_model_keeps_every_block():
    cfg = load_config(overrides=["extract.content_model.enabled=false"]).extract
    drops = Counter()
    doc = extract_document(ARTICLE, "https://news.example.org/", cfg, DomRules(cfg.dom), drops)
    assert "Reply" in "\n".join(t for t in doc["texts"] if t) and drops["boilerplate"] == 0


STORY = [PROSE,
         "Engineers from the water board worked through the night to shore up the embankment near the mill, "
         "filling sandbags by hand when the pumps failed and the generators ran out of fuel before dawn. ",
         "By noon the rain had eased, but the forecast promised more for the weekend, and the mayor asked "
         "everyone living near the river to move their cars and valuables to higher ground while they could. ",
         "Shopkeepers on the high street counted their losses in the afternoon: flooded cellars, ruined stock "
         "and insurance forms that, several of them said, nobody would read before the spring. ",
         "The last time the river came this high was in the winter of 1947, when the bridge was closed for "
         "a month and the army brought in boats to carry bread and coal to the houses on the island. "]
FIGURES = f"""<html><head><title>The river rose overnight</title></head><body>
<nav><ul>{''.join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(12))}</ul></nav>
<article><h1>The river rose overnight</h1><p>{STORY[0]}</p><p>{STORY[1]}</p>
<figure><img src="/street.jpg" alt="A street"><figcaption>Photo: J. Smith</figcaption></figure>
<p>{STORY[2]}</p>
<div class="gallery">{''.join(f'<figure><img src="/g{i}.jpg"><figcaption>Boat {i}</figcaption></figure>' for i in range(3))}</div>
<p>{STORY[3]}</p>
<figure><picture><source srcset="/bridge-big.webp 1600w, /bridge.webp 800w"><img src="/bridge.jpg"></picture>
<figcaption>The old bridge at dawn</figcaption></figure><p>{STORY[4]}</p></article>
<div><h3>Most read</h3><figure><img src="/ad.jpg"><figcaption>Win a car today</figcaption></figure>
<ul>{''.join(f'<li><a href="/m{i}">Most read story {i}</a></li>' for i in range(8))}</ul></div>
</body></html>"""


def test_a_figure_stays_or_goes_whole_with_the_text_around_it():
    def run(overrides=()):
        cfg = load_config(overrides=list(overrides)).extract
        drops = Counter()
        doc = extract_document(FIGURES, "https://news.example.org/2025/river.html", cfg, DomRules(cfg.dom), drops)
        lines = {line for t in doc["texts"] if t for line in t.split("\n")}
        return doc, lines, drops

    doc, lines, drops = run()
    kept = [u.rsplit("/", 1)[1] for u in doc["images"] if u]
    assert kept == ["street.jpg", "g0.jpg", "g1.jpg", "g2.jpg", "bridge.jpg"]
    captions = [m["caption"] for m in doc["image_meta"] if m]
    assert captions == ["Photo: J. Smith", "Boat 0", "Boat 1", "Boat 2", "The old bridge at dawn"]
    assert {"Photo: J. Smith", "Boat 0", "Boat 1", "Boat 2", "The old bridge at dawn"} <= lines
    assert "Win a car today" not in lines and "Most read story 1" not in lines
    # The article's figure, the gallery (one unit) and the <picture> figure stay; the sidebar's goes.
    assert drops["figure_kept"] == 3 and drops["figure_dropped"] == 1
    # Judged block by block, the model keeps the images but drops their short captions.
    _, lines, drops = run(["extract.content_model.figure_max_words=0"])
    assert not {"Photo: J. Smith", "Boat 1"} & lines and not drops["figure_kept"]


BENCHMARK = [("apache_builds", "2.3 GB/s", "0.098 GB/s"), ("github_events", "2.5 GB/s", "0.093 GB/s"),
             ("gsoc-2018", "3.3 GB/s", "0.091 GB/s"), ("twitter", "2.2 GB/s", "0.094 GB/s")]
TABLES = f"""<html><head><title>Parsing JSON quickly</title></head><body>
<nav><ul>{''.join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(12))}</ul></nav>
<article><h1>Parsing JSON quickly</h1><p>{STORY[0]}</p><p>{STORY[1]}</p>
<table><tr><th>file</th><th>simdjson</th><th>JSON for Modern C++</th></tr>
{''.join(f'<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>' for a, b, c in BENCHMARK[:2])}
<tr><td><img src="/speed.png" width="600" height="400"></td></tr>
{''.join(f'<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>' for a, b, c in BENCHMARK[2:])}</table>
<p>{STORY[2]}</p><p>{STORY[3]}</p></article>
<div><h3>Popular</h3><table>{''.join(f'<tr><td><a href="/p{i}">Popular post {i}</a></td><td>{i * 7} views</td></tr>'
                                      for i in range(6))}</table></div></body></html>"""


def test_a_table_stays_or_goes_whole_with_the_text_around_it():
    def run(overrides=()):
        cfg = load_config(overrides=list(overrides)).extract
        drops = Counter()
        doc = extract_document(TABLES, "https://blog.example.org/2025/json.html", cfg, DomRules(cfg.dom), drops)
        return "\n".join(t for t in doc["texts"] if t).split("\n"), drops, [u for u in doc["images"] if u]

    lines, drops, images = run()
    rows = ["file | simdjson | JSON for Modern C++"] + [" | ".join(row) for row in BENCHMARK]
    at = lines.index(rows[0])
    assert lines[at:at + 3] == rows[:3] and lines[at + 3:at + 5] == rows[3:] and lines[at - 2] == STORY[1].strip()
    assert images == ["https://blog.example.org/speed.png"]   # the image among its rows stays with them
    assert not [line for line in lines if "Popular" in line]
    assert drops["table_kept"] == 1 and drops["table_dropped"] == 1
    # Judged row by row, the model drops the article's table: its rows are short, digits and units.
    lines, drops, _ = run(["extract.content_model.table_max_words=0"])
    assert not set(rows) & set(lines) and not drops["table_kept"]
    # A table longer than table_max_words is judged row by row again.
    assert not set(rows) & set(run(["extract.content_model.table_max_words=20"])[0])


def test_figure_runs_are_small_figures_with_an_image():
    page = f"""<p>{PROSE}</p><figure><p>{PROSE}</p><img src="/a.jpg"><p>{PROSE}</p></figure>
    <figure><figcaption>No image here</figcaption></figure><p>{PROSE}</p>
    <figure><img src="/b.jpg"><figcaption>Caption</figcaption></figure>"""
    title, _, blocks, contexts = walked(page)
    from pipeline.extract.main_content import IN_FIGURE, figure_runs

    # A "figure" holding two paragraphs is judged by block; one without an image is no figure.
    features = blocks.features(contexts, title)
    in_figure, words = features[:, IN_FIGURE] > 0, np.expm1(features[:, LOG_WORDS])
    start = blocks.texts.index("https://news.example.org/b.jpg")
    assert figure_runs(blocks.is_image, words, in_figure, 80) == [(start, start + 2)]
    assert len(figure_runs(blocks.is_image, words, in_figure, 200)) == 2


NEWS = f"""<html><head><title>The river rose overnight | The Daily Example</title></head><body>
<main><article><h1>The river rose overnight</h1><p>By Ann Reporter, 12 March 2025</p>
{''.join(f'<p>{p}</p>' for p in STORY[:3])}
<div><p>Subscribe to keep reading: your first month for 1 euro.</p><p>Already a subscriber? Sign in.</p>
<p>Get the app: download The Daily Example for iOS and Android.</p></div>
{''.join(f'<p>{p}</p>' for p in STORY[3:])}</article>
<section><h2>More in Local News</h2><ul>
{''.join(f'<li><a href="/local/{i}"><img src="/thumb{i}.jpg"><h3>Council votes on the new bridge plan, part {i}</h3></a>'
         f'<span>By Staff Writer</span> <time>{i + 1} hours ago</time></li>' for i in range(8))}</ul></section>
<section><h2>23 comments</h2>
{''.join(f'<div><p><a href="/u/{i}">reader{i}</a> said: <time>12 March 2025 at 10:{i:02d}</time></p><p>I live by the '
         f'river and I have never seen it like this, the water came up so fast this year. Comment {i}.</p>'
         f'<p><a href="#">Reply</a></p></div>' for i in range(10))}</section></main></body></html>"""


def test_a_news_pages_prompts_story_cards_and_comments_go():
    def run(overrides=()):
        cfg = load_config(overrides=list(overrides)).extract
        drops = Counter()
        doc = extract_document(NEWS, "https://news.example.org/2025/river.html", cfg, DomRules(cfg.dom), drops)
        return "\n".join(t for t in doc["texts"] if t), [u for u in doc["images"] if u], drops

    text, images, drops = run()
    assert all(p.strip() in text for p in STORY)
    assert "Council votes" not in text and "reader3 said" not in text and "never seen it like this" not in text
    assert images == [] and drops["boilerplate_tail"] > 0
    assert "Subscribe" not in text and "subscriber" not in text and "Get the app" not in text
    assert drops["boilerplate_lead_in"] == 3
    # Without class or id names to go by, the model alone keeps most cards and every comment.
    text, _, drops = run(["extract.tail.max_words=0"])
    assert "reader3 said" in text and "never seen it like this" in text and not drops["boilerplate_tail"]


def test_tail_headings():
    from pipeline.extract.main_content import without_tail

    cfg = load_config().extract.tail
    texts = [PROSE, STORY[1], "23 Comments:", "Nice.", STORY[2]]
    words = np.array([len(t.split()) for t in texts], dtype=float)
    keep = np.ones(5, dtype=bool)
    sure = np.array([True, True, False, False, False])
    drops = Counter()
    assert without_tail(texts, keep, sure, words, cfg, drops).tolist() == [True, True, False, False, False]
    assert drops["boilerplate_tail"] == 3
    for heading, cut in [("More in Local News", True), ("Trending now", True), ("Most read", True),
                         ("Comments are closed for this article because it is old", False), ("Popularity", False)]:
        texts[2] = heading
        words[2] = len(heading.split())
        assert (not without_tail(texts, keep, sure, words, cfg, Counter())[2]) == cut, heading
    # More tail headings than max_headings: a card list's own "27 comments" under every card.
    texts = [PROSE, STORY[1], "27 comments", "A card", "3 comments", "Another card", "0 comments"]
    words = np.array([len(t.split()) for t in texts], dtype=float)
    sure = np.array([True, True] + [False] * 5)
    assert without_tail(texts, np.ones(7, dtype=bool), sure, words, cfg, Counter()).all()
    assert not without_tail(texts[:4], np.ones(4, dtype=bool), sure[:4], words[:4], cfg, Counter())[2:].any()
    # Before most of the article's core, a "Comments" heading opens no tail (an article about comments).
    texts = ["Comments", PROSE, STORY[1], STORY[2]]
    words = np.array([len(t.split()) for t in texts], dtype=float)
    assert without_tail(texts, np.ones(4, dtype=bool), np.ones(4, dtype=bool), words, cfg, Counter()).all()


TWICE = f"""<html><body><main>
<div class="desktop"><h1>Flood defences for the lower town</h1>{''.join(f'<p>{p}</p>' for p in STORY[:3])}</div>
<div class="mobile"><h1>Flood defences for the lower town</h1>{''.join(f'<p>{p}</p>' for p in STORY[:3])}</div>
<p><span class="d">Dec 4, 2025</span><span class="m">Dec 4, 2025</span></p>
<ul><li>A recipe with couscous</li><li>couscous</li><li>Reply</li><li>Reply</li><li>Read the rest</li><li>Read the rest</li></ul>
</main></body></html>"""


def test_each_text_once():
    from pipeline.extract.main_content import without_repeats

    def run(overrides=()):
        cfg = load_config(overrides=["extract.content_model.enabled=false", *overrides]).extract
        drops = Counter()
        doc = extract_document(TWICE, "https://news.example.org/2025/defences.html", cfg, DomRules(cfg.dom), drops)
        return [line for t in doc["texts"] if t for line in t.split("\n") if line], drops

    lines, drops = run()
    # A page rendered twice (desktop and mobile) keeps one copy.
    assert lines.count("Flood defences for the lower town") == 1 and all(lines.count(p.strip()) == 1 for p in STORY[:3])
    # Blocks under three words may repeat ("Reply" under each comment, a heading docs repeat); a
    # three-word one may not.
    assert lines.count("Reply") == 2 and lines.count("Read the rest") == 1
    assert drops["repeated_block"] == 5
    lines, drops = run(["extract.repeated_block_words=0"])
    assert lines.count(STORY[0].strip()) == 2 and lines.count("Read the rest") == 2 and not drops["repeated_block"]
    # Only kept blocks count: a copy the model dropped leaves the later one standing.
    _, _, blocks, _ = walked(TWICE)
    copies = [i for i, t in enumerate(blocks.texts) if t == STORY[0].strip()]
    keep = np.ones(len(blocks.texts), dtype=bool)
    keep[copies[0]] = False
    assert without_repeats(blocks, keep, 3, Counter())[copies[1]]
    assert not without_repeats(blocks, None, 3, Counter())[copies[1]]


def test_text_glued_to_itself_is_one_copy():
    # A mobile and a desktop span side by side: the walk keeps one copy, and its link share with it.
    _, _, blocks, _ = walked(TWICE)
    at = blocks.texts.index("Dec 4, 2025")
    assert "Dec 4, 2025Dec 4, 2025" not in blocks.texts
    assert blocks.texts[at - 1:at + 2] == [STORY[2].strip(), "Dec 4, 2025", "A recipe with couscous"]
    # One word glued to itself is a word; two links side by side are two items, a space between them.
    page = ('<p><a href="/a"><span>Brand New</span><span>Brand New</span></a></p><p>couscous</p>'
            '<p><span>couscous</span><span>couscous</span></p><p><a href="/a">Size 6</a><a href="/b">Size 6</a></p>')
    _, _, blocks, _ = walked(page)
    assert blocks.texts == ["Brand New", "couscous", "couscouscouscous", "Size 6 Size 6"]
    assert blocks.link_chars[0] == len("Brand New")


def test_training_is_deterministic_grouped_by_site_and_its_fold_models_extract_under_any_settings(shared_data):
    from tools import content_model as tcm

    pages = tcm.load_pages(shared_data)[:120]
    tcm.walk_pages(pages, tcm.model_config())
    folds, models = tcm.fold_models(pages, 3)
    fold_of_site = {}
    for page, fold in zip(pages, folds):
        assert fold_of_site.setdefault(page.group, fold) == fold   # no site is on both sides of a split
    assert len(set(folds)) == 3
    again = tcm.fold_models(pages, 3)[1]
    for a, b in zip(models, again):
        assert np.array_equal(a.stage1.w1, b.stage1.w1) and np.array_equal(a.stage2.w2, b.stage2.w2)
    docs = tcm.cross_validate(pages, 3, trained=(folds, models))
    assert docs == tcm.cross_validate(pages, 3)   # trains its own, the same
    scores = tcm.summary(pages, docs)["all"]
    assert 0.5 < scores[0] <= 1
    # The same models under other extract settings: every block kept (each text once) can only raise recall.
    everything = tcm.cross_validate(pages, 3, cfg=load_config(overrides=[
        "extract.content_model.enabled=false", "extract.content_model.threshold=0", "extract.content_model.min_threshold=0",
        "extract.tail.max_words=0", "extract.lead_ins.max_words=0"]).extract, trained=(folds, models))
    assert tcm.summary(pages, everything)["all"][2] >= scores[2]
