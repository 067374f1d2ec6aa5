"""Hostile pages: real pages cut anywhere, with bytes flipped, nested 10,000 deep or left unclosed never
end in parse_error; each yields a document or a counted reason."""
import random
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.extract.dom import DomRules
from pipeline.extract.record import record_row
from pipeline.stats import UnitStats
from pipeline.warc import Record

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PAGES = sorted((SHARED / "html" / "trafilatura").glob("*.html"))[:12]
pytestmark = pytest.mark.skipif(not PAGES, reason=f"needs the shared real pages in {SHARED}/html/trafilatura")


def mutations(body: bytes, rng: random.Random):
    n = len(body)
    for _ in range(4):
        yield body[:rng.randrange(n)]                                        # cut anywhere
    flipped = bytearray(body)
    for _ in range(max(n // 200, 1)):
        flipped[rng.randrange(n)] = rng.randrange(256)                       # bytes flipped
    yield bytes(flipped)
    yield b"<div>" * 10_000 + body + b"</div>" * 10_000                      # nesting 10,000 deep
    yield body.replace(b"</", b"<")                                          # nothing closed
    yield body.replace(b">", b"", 50)                                        # tags left open
    yield b"<p>" + body[::-1]                                                # nonsense


def test_mutated_real_pages_never_end_in_parse_error():
    cfg = load_config(overrides=["extract.max_seconds_per_page=10"]).extract
    rules, rng, reasons = DomRules(cfg.dom), random.Random(0), Counter()
    for path in PAGES:
        for i, body in enumerate(mutations(path.read_bytes(), rng)):
            record = Record(url=f"https://fuzz.example.org/{path.stem}/{i}", filename="fuzz.warc.gz", offset=i,
                            length=len(body), record_id=None, date=None, crawl=None, body=body)
            row, reason, _ = record_row(record, cfg, rules, UnitStats())
            reasons[reason] += 1
            assert not (reason or "").startswith("parse_error"), (path.name, i, reason, row.get("detail"))
    assert reasons[None] > len(PAGES)  # most mutated pages still give a document


def test_no_page_of_the_shared_warcs_ends_in_parse_error():
    from pipeline.warc import WarcReadError, iter_records

    cfg = load_config().extract
    rules, reasons = DomRules(cfg.dom), Counter()
    for path in sorted((SHARED / "warc").glob("*.warc.gz")) + sorted((SHARED / "wcxb").glob("*.warc.gz")):
        try:
            with open(path, "rb") as f:
                for record in iter_records(f, str(path), cfg):
                    reasons[record_row(record, cfg, rules, UnitStats())[1]] += 1
        except WarcReadError:
            pass  # the truncated sample ends early by design; its records before the cut were read
    assert reasons[None] > 500
    assert not [r for r in reasons if (r or "").startswith("parse_error")], reasons
