"""Record handling on the real WARCs in ../shared/data/warc and on hand-built hostile ones."""
import gzip
import io
from collections import Counter

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import load_config
from pipeline.extract.dom import DomRules
from pipeline.extract.record import record_row
from pipeline.stats import UnitStats
from pipeline.warc import WarcReadError, iter_records, parse_warc_date, warc_filename, write_warc

CFG = load_config().extract


def records(path, cfg=CFG):
    with open(path, "rb") as f:
        return list(iter_records(f, str(path), cfg))


def rows(path):
    rules, stats = DomRules(CFG.dom), UnitStats()
    return [record_row(r, CFG, rules, stats) for r in records(path)]


def test_common_crawl_segment(warc_dir):
    recs = records(warc_dir / "cc-main-2020-34-head.warc.gz")
    reasons = Counter(r.reason for r in recs)
    assert reasons == {None: 16, "record_request": 17, "record_metadata": 16, "record_warcinfo": 1}
    page = next(r for r in recs if r.reason is None)
    assert page.crawl == "CC-MAIN-2020-34" and page.date.year == 2020 and page.record_id.startswith("<urn:uuid:")
    assert page.offset > 0 and page.length > 0


def test_offsets_allow_a_byte_range_reread(warc_dir):
    path = warc_dir / "cc-main-2020-34-head.warc.gz"
    page = [r for r in records(path) if r.reason is None][3]
    member = path.read_bytes()[page.offset: page.offset + page.length]
    assert page.url.encode() in gzip.decompress(member)


def test_wget_angle_bracket_uris_are_stripped(warc_dir):
    urls = [r.url for r in records(warc_dir / "wget-academic-0.warc.gz") if r.url]
    assert urls and all(not u.startswith("<") and not u.endswith(">") for u in urls)


def test_warc_0_18_with_invalid_dates_decodes_japanese(warc_dir):
    results = rows(warc_dir / "clueweb09-non-utf8.warc.gz")
    docs = [row for row, reason, _ in results if reason is None]
    assert len(docs) == 29
    assert all(row["warc"]["date"] is None for row in docs)  # "2008-10-294T05:21:46-0700" is not a date
    for row in docs:
        text = "".join(t for t in row["texts"] if t)
        kana = sum("\u3040" <= ch <= "\u30ff" for ch in text)
        assert kana > 20, (row["url"], text[:80])
        assert "\ufffd" not in text


def test_truncated_record_is_kept_and_flagged(warc_dir):
    (rec,) = records(warc_dir / "truncated-record.warc.gz")
    assert rec.truncated and rec.reason is None and len(rec.body) > 50_000


def test_file_cut_mid_gzip_member_keeps_what_was_read(warc_dir):
    data = (warc_dir / "cc-main-2020-34-head.warc.gz").read_bytes()
    seen = list(iter_records(io.BytesIO(data[:60_000]), "cut.warc.gz", CFG))
    assert len(seen) > 5
    assert seen[-1].truncated and not any(r.truncated for r in seen[:-1])


def test_not_a_warc_raises_a_read_error():
    with pytest.raises(WarcReadError):
        list(iter_records(io.BytesIO(b"\x1f\x8b\x08\x00garbagegarbage"), "bad.warc.gz", CFG))
    with pytest.raises(WarcReadError):
        list(iter_records(io.BytesIO(b"not a warc\r\n" * 3), "bad.warc", CFG))


def test_revisit_skipped(warc_dir):
    reasons = Counter(r.reason for r in records(warc_dir / "example-revisit.warc.gz"))
    assert reasons["record_revisit"] == 1 and reasons[None] == 1


def test_helpers():
    assert warc_filename("s3a://commoncrawl/crawl-data/CC-MAIN-2024-22/segments/1/warc/x.warc.gz") == \
        "crawl-data/CC-MAIN-2024-22/segments/1/warc/x.warc.gz"
    assert warc_filename("/tmp/a/b.warc.gz") == "b.warc.gz"
    assert parse_warc_date("2024-05-18T01:58:10Z").isoformat() == "2024-05-18T01:58:10+00:00"
    assert parse_warc_date("20081029052146").year == 2008
    assert parse_warc_date("garbage") is None


def _warc(records_spec):
    """records_spec: (url, status, headers, body) → gzipped WARC bytes."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, status, headers, body in records_spec:
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
    return out.getvalue()


def test_hostile_payloads():
    page = b"<html><body><p>hello world</p></body></html>"
    data = _warc([
        ("http://a/1", "200 OK", [("Content-Type", "text/html")], page),
        ("http://a/2", "404 Not Found", [("Content-Type", "text/html")], page),
        ("http://a/3", "200 OK", [("Content-Type", "image/png")], b"\x89PNG...."),
        ("http://a/4", "200 OK", [("Content-Type", "text/html")], b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        ("http://a/5", "200 OK", [("Content-Type", "application/octet-stream")], page),
        ("http://a/6", "200 OK", [("Content-Type", "text/html")], b"<p>" + b"x" * 2000 + b"</p>"),
        ("http://a/7", "200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], gzip.compress(page)),
        ("http://a/8", "200 OK", [], page),
    ])
    cfg = load_config(overrides=["extract.max_payload_bytes=1000"]).extract
    got = {r.url: r.reason for r in iter_records(io.BytesIO(data), "h.warc.gz", cfg)}
    assert got == {"http://a/1": None, "http://a/2": "http_404", "http://a/3": "not_html",
                   "http://a/4": "binary_labelled_html", "http://a/5": None, "http://a/6": "too_large",
                   "http://a/7": None, "http://a/8": None}
    bodies = {r.url: r.body for r in iter_records(io.BytesIO(data), "h.warc.gz", cfg)}
    assert bodies["http://a/7"] == page  # Content-Encoding undone


def test_write_warc_round_trip(tmp_path):
    path = tmp_path / "t.warc.gz"
    with open(path, "wb") as f:
        write_warc(f, [("http://e.org/", b"<p>hi</p>", "text/html")])
    (rec,) = records(path)
    assert rec.url == "http://e.org/" and rec.body == b"<p>hi</p>"


def test_write_warc_is_deterministic():
    """Generated WARCs (the demo's, the benchmarks') give the same offsets, so the same doc_ids and the
    same held-out share, on every machine."""
    pages = [(f"http://e.org/{i}", b"<p>page %d</p>" % i, "text/html") for i in range(3)]
    first, second = io.BytesIO(), io.BytesIO()
    write_warc(first, pages)
    write_warc(second, pages)
    assert first.getvalue() == second.getvalue()
    ids = [r.rec_headers.get_header("WARC-Record-ID") for r in ArchiveIterator(io.BytesIO(first.getvalue()))]
    assert len(set(ids)) == 3


def _warc_with_bad_records() -> bytes:
    """Good pages around a response with no WARC-Target-URI and one whose HTTP head is garbage."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    page = b"<html><body><p>A page that is fine and long enough to keep as a document.</p></body></html>"

    def response(url):
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        return writer.create_warc_record(url, "response", payload=io.BytesIO(page), http_headers=http)

    writer.write_record(response("http://a.example/"))
    writer.write_record(response(""))
    garbled = writer.create_warc_record("urn:x", "response", payload=io.BytesIO(b"\x00\xffno status\r\n\r\n" + page))
    garbled.rec_headers.replace_header("WARC-Target-URI", "http://c.example/")
    writer.write_record(garbled)
    writer.write_record(response("http://b.example/"))
    return out.getvalue()


def test_a_bad_record_costs_that_record_not_the_file():
    got = list(iter_records(io.BytesIO(_warc_with_bad_records()), "bad-records.warc.gz", CFG))
    assert [(r.url, r.reason) for r in got] == [("http://a.example/", None), (None, "no_target_uri"),
                                                ("http://c.example/", "bad_http_headers"), ("http://b.example/", None)]
    assert "Expected Status Line" in got[2].detail


def test_a_parser_failure_keeps_its_message_and_where(monkeypatch):
    from pipeline.extract import record as extract_record

    def broken(*args, **kwargs):
        raise TypeError("nameless node")

    monkeypatch.setattr(extract_record, "extract_document", broken)
    (record,) = [r for r in iter_records(io.BytesIO(_warc_with_bad_records()), "x.warc.gz", CFG)
                 if r.url == "http://a.example/"]
    row, reason, detail = record_row(record, CFG, DomRules(CFG.dom), UnitStats())
    assert reason == "parse_error_TypeError"
    assert detail.startswith("TypeError: nameless node at test_warc.py:") and detail.endswith("in broken")
    assert row["url"] == "http://a.example/"
