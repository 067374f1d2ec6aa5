"""bench.scale in small: Common-Crawl-like WARCs through every stage on a standalone cluster, at two N."""
import gzip
import json

import pytest

from bench import crawl
from bench import scale

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_the_crawl_is_shaped_like_common_crawl(shared_data, tmp_path):
    shape = crawl.CrawlShape(pages_per_warc=40, huge_bytes=2_000_000, gallery_images=50)
    first, second = crawl.crawl_warcs(tmp_path, shape, 2)
    again = crawl.write_crawl_warc(tmp_path / "again" / first.name, shape, 0)
    assert first.read_bytes() == again.read_bytes(), "the same shape gives the same bytes"
    with gzip.open(first, "rb") as f:
        kinds = [line.split(b": ")[1].strip() for line in f if line.startswith(b"WARC-Type: ")]
    assert kinds[0] == b"warcinfo" and kinds[1:4] == [b"request", b"response", b"metadata"]
    assert kinds.count(b"response") == kinds.count(b"request") == kinds.count(b"metadata") == 40
    pages = [crawl.page(shape, w, i) for w in range(2) for i in range(40)]
    assert pages[1][0] == crawl.HUGE_URL and len(pages[1][1]) >= 2_000_000
    assert pages[2][0] == crawl.GALLERY_URL and pages[2][1].count(b"<img ") >= 50
    urls = [url for url, _ in pages]
    giant = [body for url, body in pages if url.startswith(f"https://{crawl.GIANT}/")]
    assert len(giant) >= 4, "one host holds a share of the pages"
    # ... and share a paragraph (all but copies of pages from other hosts)
    assert sum(crawl.HOUSE_LINE in body for body in giant) >= 0.8 * len(giant)
    # Pages made from one real page differ (scrambled prose, their own image URLs) ...
    assert len({body for _, body in pages}) > 60
    # ... and the copies are there: exact, and of an earlier URL.
    assert len(set(urls)) < len(urls) or len({body for _, body in pages}) < len(pages)


def test_every_stage_on_a_cluster_balances_and_equals_local_mode(shared_data, tmp_path, capsys):
    report = scale.main(["--warcs", "1", "2", "--pages-per-warc", "40", "--output", str(tmp_path / "scale")])
    assert report["balanced"], "in = out + every reason, for every stage at every N"
    assert report["identical"] == {s: True for s in scale.STAGES}
    # The extremes end counted: the 50 MB page unread past the payload limit, the gallery before any download.
    assert report["huge_page"] == "extract:too_large"
    assert report["gallery_page"] == "filter:too_many_image_positions"
    assert report["giant_domain_pages"] > 0
    for stage in scale.STAGES:
        assert report[f"{stage}_executor_mb"] > 0 and report[f"{stage}_pages_per_core_s"] > 0
        assert report[f"{stage}_linearity"] > 0
    assert report["shards_shuffle_written_mb"] > 0, "the shards stage moves image bytes through a shuffle"
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "balanced=True" in last and "identical_to_local=True" in last and "extract_linearity=" in last
    saved = json.loads((tmp_path / "scale" / "scale.json").read_text())
    assert set(saved["runs"]) == {"1", "2"} and saved["runs"]["2"]["extract"]["pages"] == 80
