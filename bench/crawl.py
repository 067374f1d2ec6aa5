"""Common-Crawl-like WARCs made of the real pages in ../shared/data, for bench.scale.

Each WARC holds a warcinfo record, then per page a request, a response and a metadata record, one gzip
member each, as Common Crawl writes them. Page (w, i) of WARC w is a pure function of (seed, w, i):

* most pages are a real page (WCXB, the shared HTML, the sample WARCs' responses) whose prose is
  scrambled (a share of its words swapped within each long text node) and whose <img src> get a
  variant query, so that two pages made from one real page are neither near-duplicates nor share images;
* a share are exact copies of an earlier page under a new URL, edited copies (a few words swapped: near
  duplicates), or an earlier page's URL again with new content (URL duplicates), earlier WARCs included;
* URLs spread over `domains` hosts with a Zipf skew, plus one giant host holding `giant_share` of all pages,
  each of which carries one house paragraph (a hot key for dedup's repeated-paragraph step);
* WARC 0 also holds the extremes: a 50 MB page and a page with 10,000 images.
"""
from __future__ import annotations

import io
import random
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from demo.samples import SHARED_DATA, shared_html_pages

GIANT = "giant.example.com"
HUGE_URL = "https://huge-page.example.org/50mb.html"
GALLERY_URL = "https://gallery.example.org/10000-images.html"
HOUSE_LINE = (b"<p>Giant Example News is an independent newsroom funded by its readers, and every story "
              b"on this site is free to read and to share.</p>")
DATE = "2024-05-18T01:58:10Z"
CRAWL = "CC-MAIN-2024-22"

# A long text node that is not inside <script> or <style>: prose to scramble.
_TEXT = re.compile(rb"(<(?!script\b|style\b)[^<>]*>)([^<>]{60,})(?=<)", re.I)
_IMG_SRC = re.compile(rb"(<img\b[^>]*?\bsrc=[\"'])([^\"'>]+)", re.I)


@dataclass(frozen=True)
class CrawlShape:
    pages_per_warc: int = 35000
    seed: int = 0
    domains: int = 5000
    giant_share: float = 0.15      # of every WARC's pages, on one host
    exact_share: float = 0.03      # copies of an earlier page, new URL
    near_share: float = 0.03       # edited copies of an earlier page, new URL
    url_share: float = 0.02        # an earlier page's URL with new content
    scramble: float = 0.3          # word swaps per word in a page made from a real page
    edit: float = 0.01             # ... and in an edited copy
    huge_bytes: int = 50_000_000
    gallery_images: int = 10_000


@lru_cache(maxsize=1)
def real_pages(data: Path = SHARED_DATA) -> tuple[bytes, ...]:
    """The HTML bodies of the shared real pages: WCXB's 1,358, the shared HTML and the sample WARCs'."""
    from pipeline.config import load_config
    from pipeline.warc import WarcReadError, iter_records

    cfg = load_config().extract
    bodies = [body for _, body, _ in shared_html_pages(data)]
    for path in [data / "wcxb" / "dev-pages.warc.gz", *sorted((data / "warc").glob("*.warc.gz"))]:
        if not path.exists():
            continue
        with open(path, "rb") as stream:
            try:
                bodies += [r.body for r in iter_records(stream, str(path), cfg) if r.reason is None]
            except WarcReadError:
                pass  # the truncated sample: its readable records are in
    if not bodies:
        raise FileNotFoundError(f"no real pages under {data}: bench.scale needs ../shared/data")
    return tuple(bodies)


def scramble(body: bytes, rng: random.Random, share: float) -> bytes:
    def swap(match: re.Match) -> bytes:
        words = match.group(2).split(b" ")
        n = len(words)
        for _ in range(int(n * share)):
            i, j = rng.randrange(n), rng.randrange(n)
            words[i], words[j] = words[j], words[i]
        return match.group(1) + b" ".join(words)

    return _TEXT.sub(swap, body)


def vary_images(body: bytes, variant: str) -> bytes:
    def tag(match: re.Match) -> bytes:
        src = match.group(2)
        if src.startswith(b"data:"):
            return match.group(0)
        return match.group(1) + src + (b"&" if b"?" in src else b"?") + b"v=" + variant.encode()

    return _IMG_SRC.sub(tag, body)


def domain(rng: random.Random, shape: CrawlShape) -> str:
    if rng.random() < shape.giant_share:
        return GIANT
    # Zipf(1) over the hosts: host k has weight 1/(k+1).
    k = int(shape.domains ** rng.random()) - 1
    return f"site{k:05d}.example.com"


def page(shape: CrawlShape, w: int, i: int) -> tuple[str, bytes]:
    """Page i of WARC w: (URL, HTML body)."""
    if w == 0 and i == 1:
        return HUGE_URL, huge_page(shape.huge_bytes)
    if w == 0 and i == 2:
        return GALLERY_URL, gallery_page(shape.gallery_images)
    rng = random.Random(f"{shape.seed}:{w}:{i}")
    url = f"https://{domain(rng, shape)}/{w}/{i}.html"
    roll = rng.random()
    copies = shape.exact_share + shape.near_share + shape.url_share
    if roll < copies and (w, i) > (0, 3):
        source_w = rng.randint(0, w)
        if source_w == w and i <= 3:
            source_w -= 1
        source_i = rng.randrange(3, i if source_w == w else shape.pages_per_warc)
        source_url, source = page(shape, source_w, source_i)
        if roll < shape.exact_share:
            return url, source
        if roll < shape.exact_share + shape.near_share:
            return url, scramble(source, rng, shape.edit)
        url = source_url
    pool = real_pages()
    body = vary_images(scramble(pool[rng.randrange(len(pool))], rng, shape.scramble), f"{w}-{i}")
    return url, with_house_line(body) if url.startswith(f"https://{GIANT}/") else body


def with_house_line(body: bytes) -> bytes:
    """The giant host's pages all carry one sentence inside their text, after the first paragraph: the
    key that every one of its pages shares in dedup's repeated-paragraph step."""
    at = body.find(b"</p>")
    return body if at < 0 else body[: at + 4] + HOUSE_LINE + body[at + 4:]


def huge_page(size: int) -> bytes:
    paragraph = b"<p>" + b"A paragraph of a page far larger than any reader should hold in memory. " * 20 + b"</p>\n"
    return b"<html><head><title>A 50 MB page</title></head><body>" + paragraph * (size // len(paragraph) + 1) + \
        b"</body></html>"


def gallery_page(images: int) -> bytes:
    """A real English article (the first shared page with many a " the ") with `images` photos after
    its third paragraph: prose that passes the filter, so only the image count can stop it."""
    figures = b"".join(b'<img src="/photos/%d.jpg" width="800" height="600">\n' % k for k in range(images))
    body = next(page for page in real_pages() if page.count(b" the ") > 50)
    at = 0
    for _ in range(3):
        at = body.find(b"</p>", at) + 4
    return body[:at] + figures + body[at:]


def _id(*parts) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ' '.join(map(str, parts)))}>"


def write_crawl_warc(path: Path, shape: CrawlShape, w: int, progress=None) -> Path:
    """WARC w of the crawl, written atomically; an existing file is reused (its name holds the shape)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        info_id = _id(path.name, "warcinfo")
        info = writer.create_warcinfo_record(path.name, {
            "isPartOf": CRAWL, "publisher": "webweave bench.scale",
            "description": "real pages of ../shared/data, scrambled and copied as a crawl would hold them"})
        info.rec_headers.replace_header("WARC-Record-ID", info_id)
        info.rec_headers.replace_header("WARC-Date", DATE)
        writer.write_record(info)
        for i in range(shape.pages_per_warc):
            url, body = page(shape, w, i)
            host_path = url.split("/", 3)
            request_id, response_id = _id(path.name, i, "request"), _id(path.name, i, "response")
            common = {"WARC-Date": DATE, "WARC-Warcinfo-ID": info_id, "WARC-IP-Address": "127.0.0.1"}
            request = StatusAndHeaders(f"GET /{host_path[3] if len(host_path) > 3 else ''} HTTP/1.1", [
                ("Host", host_path[2]), ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
                ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")], is_http_request=True)
            writer.write_record(writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), http_headers=request,
                warc_headers_dict={**common, "WARC-Record-ID": request_id}))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=http,
                warc_headers_dict={**common, "WARC-Record-ID": response_id, "WARC-Concurrent-To": request_id,
                                   "WARC-Identified-Payload-Type": "text/html"}))
            fields = b"fetchTimeMs: 120\r\ncharset-detected: UTF-8\r\n"
            writer.write_record(writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(fields), warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Date": DATE, "WARC-Record-ID": _id(path.name, i, "metadata"),
                                   "WARC-Warcinfo-ID": info_id, "WARC-Concurrent-To": response_id}))
            if progress:
                progress()
    tmp.rename(path)
    return path


def crawl_warcs(folder: Path, shape: CrawlShape, count: int, progress=None) -> list[Path]:
    name = f"seed{shape.seed}-p{shape.pages_per_warc}"
    return [write_crawl_warc(folder / f"CC-MAIN-bench-{name}-{w:05d}.warc.gz", shape, w, progress)
            for w in range(count)]

