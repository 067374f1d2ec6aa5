"""The extractor on hand-written pages: each case is one thing OBELICS got wrong or a hostile input."""
from collections import Counter
from urllib.parse import urljoin

import pytest

from pipeline.config import load_config
from pipeline.extract.dom import DomRules, PageDropped
from pipeline.extract.images import choose_image_url, parse_srcset, resolve_url
from pipeline.extract.record import extract_document
from pipeline.schema import document_problems


def extract(html, url="http://x.org/2020/p.html", overrides=()):
    # These pages test the walk's rules; the main-content model has its own tests (test_content_model.py).
    cfg = load_config(overrides=["extract.content_model.enabled=false", *overrides]).extract
    drops = Counter()
    doc = extract_document(html, url, cfg, DomRules(cfg.dom), drops)
    assert document_problems(doc) == []
    return doc, drops


def images_of(doc):
    return [u for u in doc["images"] if u]


def texts_of(doc):
    return [t for t in doc["texts"] if t]


def test_relative_urls_keep_page_directory_and_scheme():
    doc, _ = extract('<p>a</p><img src="img/a.jpg"><p>b</p><img src="../../up/pic.gif"><img src="//cdn.x.org/c.png">')
    assert images_of(doc) == ["http://x.org/2020/img/a.jpg", "http://x.org/up/pic.gif", "http://cdn.x.org/c.png"]


def test_base_href_is_honoured():
    doc, _ = extract('<head><base href="https://static.x.org/media/"></head><body><p>t</p><img src="a.jpg"></body>')
    assert images_of(doc) == ["https://static.x.org/media/a.jpg"]


def test_srcset_largest_candidate_and_commas_in_urls():
    assert parse_srcset("a.jpg 300w, https://c.x/w_800,h_600/b.jpg 800w") == [
        ("a.jpg", 300.0, 1.0), ("https://c.x/w_800,h_600/b.jpg", 800.0, 1.0)]
    doc, _ = extract('<p>t</p><img src="small.jpg" srcset="m.jpg 1x, l.jpg 2x">')
    assert images_of(doc) == ["http://x.org/2020/l.jpg"]


def test_lazy_loading_attributes_beat_placeholder_src():
    doc, _ = extract('<p>t</p><img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg">'
                     '<img data-original="/orig.jpg"><img data-lazy-src="/lazy.jpg">')
    assert images_of(doc) == ["http://x.org/real.jpg", "http://x.org/orig.jpg", "http://x.org/lazy.jpg"]


def test_data_uri_only_images_are_counted_not_kept():
    doc, drops = extract('<p>text</p><img src="data:image/png;base64,iVBOR"><img alt="no source">')
    assert images_of(doc) == []
    assert drops["image_data_uri"] == 1 and drops["image_no_src"] == 1


def test_figure_image_gets_its_caption_and_picture_source_fallback():
    doc, _ = extract('<p>intro</p><figure><picture><source srcset="/big.webp 1200w, /small.webp 400w">'
                     '<img alt="A cat" width="640px" height="50%"></picture>'
                     '<figcaption>A cat on a  mat.</figcaption></figure>')
    i = doc["images"].index("http://x.org/big.webp")
    assert doc["image_meta"][i] == {"alt": "A cat", "caption": "A cat on a mat.", "width_attr": 640, "height_attr": None}
    assert "A cat on a mat." in texts_of(doc)[-1]


def test_lists_tables_breaks_and_paragraphs():
    doc, _ = extract("<h1>Title</h1><p>One<br>two<BR/>three<br class=x>four</p>"
                     "<ul><li>apple</li><li>pear</li></ul>"
                     "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
                     "<div>line a</div><div>line b</div><p>in<b>line</b> <i>words</i></p>")
    assert texts_of(doc) == ["Title\n\nOne\ntwo\nthree\nfour\n\napple\npear\n\nk | v\na | 1\n\nline a\nline b\n\ninline words"]


def test_title_and_meta_robots():
    doc, _ = extract('<head><title> My  page </title><meta name="ROBOTS" content="NoAI, noimageai"></head><p>x</p>')
    assert doc["title"] == "My page"
    assert doc["meta_robots"] == "noai,noimageai"


def test_boilerplate_removed_by_word_not_by_equality():
    html = ('<body class="menu-open"><nav><p>Home About</p></nav><header class="site"><a>Logo</a></header>'
            '<div class="site-header menu"><p>Menu text</p></div><div id="footer-wrap"><p>Impressum</p></div>'
            '<div class="cookie-banner"><p>We use cookies</p></div><div class="admin-note"><p>kept admin</p></div>'
            '<script>var x</script><style>p{}</style><form><label>Search</label><input><button>Go</button></form>'
            '<main><p>Body text.</p></main><aside>Related</aside><footer>Copyright</footer></body>')
    doc, drops = extract(html)
    assert texts_of(doc) == ["kept admin\n\nBody text."]
    assert drops["tag_nav"] == 1 and drops["boilerplate_footer"] == 1 and drops["boilerplate_cookie"] == 1


def test_class_matched_container_with_prose_is_kept():
    prose = "This is the article body, a long paragraph of real prose. " * 10
    doc, _ = extract(f'<div class="widget Blog"><p>{prose}</p><div class="share"><a>Share</a></div></div>')
    assert texts_of(doc) == [prose.strip()]


def test_article_header_kept_site_header_dropped():
    doc, _ = extract("<header><a>Site</a></header><article><header><h1>Headline</h1></header><p>Text.</p></article>")
    assert texts_of(doc) == ["Headline\n\nText."]


def test_hidden_elements_dropped_when_asked():
    html = '<p>shown</p><div style="display: none">ghost</div><p hidden>h</p><span aria-hidden="true">x</span>'
    doc, drops = extract(html, overrides=["extract.dom.drop_hidden=true"])
    assert texts_of(doc) == ["shown"] and drops["hidden"] == 3


def test_hidden_content_kept_by_default():
    # React streams server-rendered content in <div hidden id="S:0"> and moves it in place with a script;
    # accordion panels and product tabs are hidden until a click.
    doc, drops = extract('<div id="root"><p>Loading…</p></div><div hidden id="S:0"><p>The streamed article.</p></div>'
                         '<div class="panel" style="display:none"><p>Shipping: 3 days.</p></div>')
    assert texts_of(doc) == ["Loading…\n\nThe streamed article.\n\nShipping: 3 days."] and drops["hidden"] == 0


def test_wrapping_form_keeps_its_content():
    # ASP.NET wraps the whole page in <form id="aspnetForm">; only the form's widgets are dropped.
    doc, drops = extract('<form id="aspnetForm" action="/page.aspx"><input type="hidden" name="__VIEWSTATE">'
                         '<h1>Annual report</h1><p>Revenue grew.</p><select><option>EN</option></select>'
                         '<button>Submit</button></form>')
    assert texts_of(doc) == ["Annual report\n\nRevenue grew."]
    assert drops["tag_input"] == 1 and drops["tag_select"] == 1 and drops["tag_button"] == 1


def test_noscript_holding_the_page_is_kept():
    # Discourse forums serve every post inside <noscript data-path=…>; lexbor parses it as markup.
    posts = "".join(f'<div class="topic-body"><p>Post {i}: the printer driver fails after the update.</p></div>'
                    for i in range(6))
    doc, drops = extract(f'<p>Forum</p><noscript><img src="/pixel.gif"></noscript><noscript data-path="/t/1">{posts}</noscript>')
    assert texts_of(doc)[0].startswith("Forum\n\nPost 0:") and drops["tag_noscript"] == 1
    doc, _ = extract(f'<p>x</p><noscript>{posts}</noscript>', overrides=["extract.dom.noscript_content_chars=0"])
    assert texts_of(doc) == ["x"]


# fermyon.com's blog post sits inside an announcement <aside> that is never closed.
UNCLOSED_ASIDE = ("<body><aside class='banner'><p>Join us at the summit!</p><main><article><h1>Lessons from "
                  "five startups</h1>" + "<p>We learned that the first customers shape the product more than any "
                  "plan written before them, and that hiring slowly pays for itself.</p>" * 4 + "</article></main>"
                  "</body>")
# A page rendered by script: the server sends its menus, a cookie banner and a footer.
SHELL = ("<body><nav><ul>" + "".join(f"<li><a href='/c{i}'>Category {i}</a></li>" for i in range(20)) + "</ul></nav>"
         "<div id='app'></div><div class='cookie-consent'><p>We use cookies to give you the best experience on "
         "our website and to analyse traffic. By clicking accept you agree to our cookie policy.</p></div>"
         "<footer>© 2025 Shop Inc. All rights reserved.</footer></body>")


def test_a_page_swallowed_by_a_dropped_tag_is_walked_again():
    doc, drops = extract(UNCLOSED_ASIDE)
    assert drops["walked_again"] == 1 and "tag_aside" not in drops
    assert "first customers shape the product" in "\n".join(texts_of(doc))
    with pytest.raises(PageDropped, match="empty_document"):
        extract(UNCLOSED_ASIDE, overrides=["extract.dom.second_walk_keeps=[]"])


def test_a_script_rendered_shell_stays_empty():
    """Its menus and footer come back in a second walk, but nothing inside <main> or <article>."""
    drops = Counter()
    cfg = load_config().extract
    with pytest.raises(PageDropped, match="empty_document"):
        extract_document(SHELL, "http://x.org/", cfg, DomRules(cfg.dom), drops)
    assert not drops["walked_again"] and drops["tag_nav"] == 1 and drops["boilerplate_cookie"] == 1


def test_a_page_with_some_text_is_walked_once():
    doc, drops = extract("<body><nav><a href='/'>Home</a></nav><p>Opening hours: nine to five, every day.</p></body>")
    assert texts_of(doc) == ["Opening hours: nine to five, every day."]
    assert drops["tag_nav"] == 1 and not drops["walked_again"]


def test_node_without_a_name_is_skipped_not_fatal():
    class Node:  # what lexbor hands back for a node it cannot name
        tag, child, parent, next, attributes = None, None, None, None, {}

    class Root:
        child = Node()

    from tests.reference_walk import walk
    Root.child.parent = Root
    drops = Counter()
    assert list(walk(Root(), DomRules(load_config().extract.dom), drops, float("inf"), 100)) == []
    assert drops["node_without_tag"] == 1


def test_pre_keeps_code_layout():
    doc, _ = extract('<p>Code:</p><pre><span>from</span> <span>x</span> import y\n    z = 1</pre>')
    assert texts_of(doc) == ["Code:\n\nfrom x import y\n    z = 1"]


def test_texts_and_images_alternate_in_dom_order():
    doc, _ = extract("<p>a</p><img src=1.jpg><img src=2.jpg><p>b</p><div><p>c</p><img src=3.jpg></div>")
    assert doc["texts"] == ["a", None, None, "b\n\nc", None]
    assert doc["images"] == [None, "http://x.org/2020/1.jpg", "http://x.org/2020/2.jpg", None, "http://x.org/2020/3.jpg"]


def test_empty_page_is_dropped():
    with pytest.raises(PageDropped, match="empty_document"):
        extract("<html><body><script>x</script><nav>menu</nav></body></html>")


def test_deep_nesting_is_a_counted_reason_not_a_crash():
    for depth in (10_000, 100_000):
        html = "<div>" * depth + "deep" + "</div>" * depth
        with pytest.raises(PageDropped, match="too_deep"):
            extract(html)


def test_time_budget():
    html = "<div>" + "<p>word</p>" * 100_000 + "</div>"
    with pytest.raises(PageDropped, match="timeout"):
        extract(html, overrides=["extract.max_seconds_per_page=0.0"])


def test_rules_are_switchable():
    html = "<p>x</p><ul><li>item</li></ul><table><tr><td>cell</td></tr></table><figure><img src=a.jpg></figure>"
    doc, _ = extract(html, overrides=["extract.dom.keep_lists=false", "extract.dom.keep_tables=false",
                                      "extract.dom.keep_figures=false"])
    assert texts_of(doc) == ["x"] and images_of(doc) == []
    doc, _ = extract("<p>a<br>b</p>", overrides=["extract.dom.line_breaks=false"])
    assert texts_of(doc) == ["ab"]


def test_bad_schemes_skipped():
    cfg = load_config().extract.images
    assert choose_image_url({"src": "javascript:alert(1)"}, "http://x.org/", cfg, []) == (None, "image_bad_scheme")
    assert choose_image_url({"src": " /a b.jpg\n"}, "http://x.org/", cfg, [])[0] == "http://x.org/a b.jpg"


def test_an_unparsable_image_url_costs_the_image_not_the_page():
    """urljoin raises on an unclosed IPv6 bracket: that image is dropped as image_bad_url, the next
    candidate is tried, and a <base href> it cannot parse leaves the page URL as the base."""
    doc, drops = extract('<p>first</p><img src="http://[bad/x.jpg"><img src="http://[bad/y.jpg" srcset="/ok.jpg 2x">'
                         '<p>second</p>')
    assert texts_of(doc) == ["first", "second"] and images_of(doc) == ["http://x.org/ok.jpg"]
    assert drops["image_bad_url"] == 1
    doc, _ = extract('<head><base href="http://[bad/"></head><body><p>x</p><img src="a.jpg"></body>')
    assert images_of(doc) == ["http://x.org/2020/a.jpg"]


@pytest.mark.parametrize("value", ["https://a.org/b.jpg", "http://a.org/b?", "http://a.org/b#", "http://a/b?#f",
                                   "http://a/b;p?q", "http:///x", "https://?x", "http://", "HTTP://a/b",
                                   "http://ä.org/x", "http://[::1]/x", "http://a/../b", "../c.png", "//cdn.org/d.png",
                                   "/a/b.png?w=1#f", "/a/./b.png", "/a/../b.png", "/a//b.png", "/a/..", "/a;p", "/a?",
                                   "/a#", "/?#", "/", "/x?y=/./z", "/ä.png", "/[x]", "//cdn.org/a/../b", "//cdn.org",
                                   "//cdn.org?x", "//", "///x", "//?x", "//[::1]/x", "//cdn.org/x#"])
def test_resolve_url_is_urljoin(value):
    for base in ("https://x.org/dir/page.html", "http://x.org/", "HTTPS://u@X.org:8443/a?b#c", "https://x.org",
                 "ftp://x.org/dir/", "file:///tmp/", ""):
        assert resolve_url(base, value) == urljoin(base, value)


def test_lead_in_blocks_that_only_announce_other_content_leave():
    """"Read more: …", "Related topics", "Tagged:" go whatever the model says; a sentence that merely
    begins with such a word stays, and the rule can be switched off."""
    prose = "<p>The harbour was quiet that morning, and the boats waited for the tide to turn again.</p>"
    html = (f"<body><article>{prose}<p>Read more: Another story about boats</p><p>Related topics</p>"
            "<p>Tagged: boats, tides</p><p>Next, the crew checked the ropes and the engines twice.</p>"
            "<p>Next » Morning tides</p></article></body>")
    doc, drops = extract(html)
    text = "\n".join(t for t in doc["texts"] if t)
    assert "harbour" in text and "Next, the crew checked" in text
    for gone in ("Read more", "Related topics", "Tagged", "Next » Morning tides"):
        assert gone not in text, gone
    assert drops["boilerplate_lead_in"] == 4
    doc, drops = extract(html, overrides=["extract.lead_ins.max_words=0"])
    assert "Related topics" in "\n".join(t for t in doc["texts"] if t) and not drops["boilerplate_lead_in"]


def test_text_comes_out_composed_and_utf8_bytes_parse_as_their_text():
    # adac.de spells "ü" as "u" + U+0308: word lists and \w tokenisers would miss "geprüft".
    html = ('<title>Kindersitze fu\u0308r Babys</title><p>Besonders bei Babyschalen sollte gepru\u0308ft werden.</p>'
            '<img src="a.jpg" alt="Gurtla\u0308nge"><p>Und dann: weiter.</p>')
    doc, _ = extract(html)
    assert doc["title"] == "Kindersitze für Babys"
    assert texts_of(doc)[0] == "Besonders bei Babyschalen sollte geprüft werden."
    assert doc["image_meta"][1]["alt"] == "Gurtlänge"
    assert extract(html.encode("utf-8"))[0] == doc


def test_soft_hyphens_leave_the_words_whole():
    # soundofscience.fr writes "réac&shy;tion": kept, the word reads "réac" + "tion" to every tokeniser,
    # word list and snippet search. A soft hyphen only marks where a word may break.
    html = ('<title>L\u2019\u00e9va\u00adlua\u00adtion</title><p>En r\u00e9ac&shy;tion \u00e0 la can&shy;di&shy;da&shy;ture.</p>'
            '<figure><img src="a.jpg" alt="Sch\u00f6n&shy;heit"><figcaption>Ein Bei&shy;spiel</figcaption></figure>'
            '<pre>x = 1&shy;0</pre><p>&shy;</p><p>Ende.</p>')
    doc, _ = extract(html)
    assert doc["title"] == "L\u2019\u00e9valuation"
    assert texts_of(doc) == ["En r\u00e9action \u00e0 la candidature.", "Ein Beispiel\n\nx = 10\n\nEnde."]
    assert doc["image_meta"][1] == {"alt": "Sch\u00f6nheit", "caption": "Ein Beispiel", "width_attr": None,
                                    "height_attr": None}


def test_adjacent_links_are_separate_words():
    # knowtechie's tag list: <a>Epic Games</a><a>GameTechie</a>, spaced by CSS alone.
    doc, _ = extract('<p>Made by <span><a href="/t/1">Epic Games</a><a href="/t/2">GameTechie</a></span>'
                     '<b><a href="/t/3">News</a></b></p><p>See (<a href="/x">this</a>) and <a href="/y">w</a>ord.</p>')
    assert texts_of(doc) == ["Made by Epic Games GameTechie News\n\nSee (this) and word."]


def test_invalid_utf8_reads_the_same_from_bytes_as_from_replaced_text():
    # record_row hands lexbor the record's bytes when decode_html said UTF-8, which it also says when no
    # codec fits and it decodes UTF-8 with replacement: lexbor must replace bad bytes as Python does.
    body = b"<p>caf\xe9 ol\xc3 \xff\xfe end \xe2\x82 x \xf0\x9f\x98 y \xed\xa0\x80 z \xc0\xaf w \x00 nul</p>"
    doc, _ = extract(body.decode("utf-8", errors="replace"))
    assert extract(body)[0] == doc and "\ufffd" in texts_of(doc)[0]
