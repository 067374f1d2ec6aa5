"""The dedup job on Spark, on a corpus made from real pages with planted duplicates."""
import json
from datetime import datetime, timezone

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import dedup as dedup_job
from pipeline.extract.record import domain_of
from pipeline.schema import DOCS_SCHEMA
from tests.helpers import validate_table

pytestmark = pytest.mark.spark
CAPTION = "A man riding a wave on top of a surfboard."  # COCO val2017, image 179765


def doc(doc_id, url, texts, images=None, crawl="CC-MAIN-2024-22"):
    images = images or [None] * len(texts)
    return {"doc_id": doc_id, "url": url, "domain": domain_of(url), "title": None,
            "warc": {"filename": "x.warc.gz", "offset": 0, "length": 0, "record_id": None,
                     "date": datetime(2024, 5, 18, tzinfo=timezone.utc), "crawl": crawl},
            "texts": texts, "images": images, "image_meta": [{"alt": None, "caption": None, "width_attr": None,
                                                               "height_attr": None} if i else None for i in images],
            "meta_robots": None, "charset": "utf-8"}


def page_text(shared_data, name):
    from pipeline.extract.record import extract_file

    d = extract_file(shared_data / "html" / "trafilatura" / name, f"https://{name}/")
    return "\n\n".join(t for t in d["texts"] if t)


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    python = page_text(shared_data, "blog.python.org.html")
    django = page_text(shared_data, "caktusgroup.com.django.html")
    lemire = page_text(shared_data, "lemire.me.json.html")
    sentences = python.split(". ")
    footer = "Copyright 2024 News Example. All rights reserved. Reproduction without permission is prohibited."
    a = [
        doc("py-orig", "https://blog.python.org/2016/12/python-360.html", [python]),
        doc("py-date", "https://mirror.example.org/python-360", [python.replace("2016", "2017")]),
        doc("py-swap", "https://copy.example.net/p", [". ".join([sentences[1], sentences[0], *sentences[2:]])],
            crawl="CC-MAIN-2024-33"),
        doc("py-boiler", "https://third.example.com/x", [python + "\n\nShare this on Twitter. Subscribe now."]),
        doc("py-url", "http://www.blog.python.org/2016/12/python-360.html/?utm_source=feed", [python[:2000]],
            crawl="CC-MAIN-2020-34"),
        doc("dj", "https://www.caktusgroup.com/blog/a", [django]),
        doc("dj-other", "https://www.caktusgroup.com/blog/b", [lemire]),  # same site, distinct page
    ]
    b = [doc(f"news-{i}", f"https://news.example/{i}", [f"Story {i}: " + " ".join([f"word{i}x{j}" for j in range(40)]),
                                                           footer]) for i in range(3)]
    b += [doc(f"pair-{i}", f"https://pairs.example/{i}", [f"Unique text {i} " + "alpha " * 12 + f"end{i}",
                                                            "Shared by two only, which is not boilerplate yet."])
          for i in range(2)]
    letters = "abcdefghijklmnop"  # words lose digits at their ends, so tell documents apart with letters
    b += [doc(f"logo-{i:02d}", f"https://site{i}.example/", [" ".join(f"tok{letters[i]}{c}" for c in letters * 2), None],
              images=[None, "https://cdn.example/logo.png"]) for i in range(11)]
    b += [doc(f"set-{i}", f"https://gallery{i}.example/", [" ".join(f"pic{letters[i]}{c}" for c in letters), None, None],
              images=[None, "https://img.example/1.jpg", "https://img.example/2.jpg"]) for i in range(2)]
    b += [doc("eval-one", "https://blog.example/surf", ["We spent the day at the beach and took photos.", CAPTION,
                                                          "The water was cold but the waves were great for everyone."]),
          doc("eval-all", "https://captions.example/", [CAPTION])]
    folder = tmp_path_factory.mktemp("dedup-in")
    for name, rows in (("a", a), ("b", b)):
        pq.write_table(pa.Table.from_pylist(rows, DOCS_SCHEMA), folder / f"part-{name}.parquet")
    return folder


def run(corpus, out, *extra):
    return dedup_job.main(["--input", str(corpus), "--output", str(out), "--set", "spark.master=local[2]", *extra])


@pytest.fixture(scope="module")
def result(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("dedup-out")
    return out, run(corpus, out)


def rejected(out):
    return dict(duckdb.sql(f"select doc_id, reason from '{out}/_rejected/*.parquet'").fetchall())


def kept(out):
    return {r["doc_id"]: r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()}


def test_stats_add_up(result):
    out, stats = result
    docs = stats["docs"]
    assert docs["in"] == docs["out"] + sum(docs["dropped"].values()) == 27
    assert docs["out"] == len(kept(out)) and sum(docs["dropped"].values()) == len(rejected(out))
    for part in out.glob("*.parquet"):
        validate_table(pq.read_table(part))


def test_url_and_near_duplicates(result):
    out, stats = result
    reasons = rejected(out)
    # the most recent crawl keeps the cluster; the others name it
    assert reasons["py-url"].startswith("url_duplicate:")
    for loser in ("py-orig", "py-date", "py-boiler"):
        assert reasons[loser] == "near_duplicate:py-swap", reasons
    assert "py-swap" in kept(out) and "dj" in kept(out) and "dj-other" in kept(out)
    clusters = duckdb.sql(f"select keeper, size, members from '{out}/_clusters/*.parquet'").fetchall()
    assert ("py-swap", 4, ["py-boiler", "py-date", "py-orig", "py-swap"]) in clusters


def test_paragraphs_repeated_in_a_domain(result):
    out, stats = result
    docs = kept(out)
    for i in range(3):
        assert not any("All rights reserved" in t for t in docs[f"news-{i}"]["texts"] if t)
    assert any("two only" in t for t in docs["pair-0"]["texts"] if t)
    assert stats["nodes"]["dropped"]["paragraph_domain_repeated"] == 3


def test_overused_images_and_image_sets(result):
    out, stats = result
    docs = kept(out)
    assert all("https://cdn.example/logo.png" not in docs[f"logo-{i:02d}"]["images"] for i in range(11))
    assert stats["nodes"]["dropped"]["image_overused"] == 11
    assert rejected(out)["set-1"] == "image_set_duplicate:set-0"


def test_decontamination(result):
    out, stats = result
    docs = kept(out)
    assert CAPTION not in docs["eval-one"]["texts"][0] and "beach" in docs["eval-one"]["texts"][0]
    assert rejected(out)["eval-all"].startswith("eval_contaminated:coco_captions_val2017:")
    matches = duckdb.sql(f"select doc_id, set, item from '{out}/_eval_matches/*.parquet'").fetchall()
    assert {m[0] for m in matches} == {"eval-one", "eval-all"}
    assert all(m[1] == "coco_captions_val2017" for m in matches)
    assert stats["eval_matches_by_set"] == {"coco_captions_val2017": 2}


def test_deterministic_across_partitioning_and_resumable(corpus, result, tmp_path):
    out, stats = result
    other = tmp_path / "other"
    dedup_job.main(["--input", str(corpus), "--output", str(other), "--set", "spark.master=local[1]",
                    "--set", "spark.conf={spark.sql.shuffle.partitions: 3, spark.default.parallelism: 3}"])
    first = sorted(out.glob("*.parquet")) + sorted(out.glob("_rejected/*.parquet"))
    second = sorted(other.glob("*.parquet")) + sorted(other.glob("_rejected/*.parquet"))
    assert [p.relative_to(out) for p in first] == [p.relative_to(other) for p in second] and first
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    again = run(corpus, other, "--set", "spark.conf={spark.sql.shuffle.partitions: 3, spark.default.parallelism: 3}")
    assert again["units"]["skipped"] == 2 and again["docs"] == stats["docs"]
    saved = json.loads((other / "_stats.json").read_text())
    assert saved["docs"] == stats["docs"]


def test_settings_dedup_does_not_read_do_not_rerun_it(corpus, result, tmp_path, caplog):
    import logging
    import shutil

    out, stats = result
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with caplog.at_level(logging.INFO):
        again = run(corpus, copy, "--set", "dedup.eval_image_hashes=/elsewhere/eval-images.parquet")
    assert "stage-wide decisions already made" in caplog.text
    assert again["docs"] == stats["docs"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run(corpus, copy, "--set", "dedup.near.threshold=0.9")
    assert "stage-wide decisions already made" not in caplog.text
