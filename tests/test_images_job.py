"""The images and shards jobs on Spark against the loopback image server: accounting, resumption,
shards that verify and train, the OBELICS export, and determinism."""
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from demo.image_server import ImageServer
from jobs import images as images_job
from jobs import shards as shards_job
from jobs import verify
from pipeline.schema import DOCS_SCHEMA
from tests.helpers import RED_CLASSIFIER_SETTINGS, red_classifier
from tests.test_dedup_job import doc

pytestmark = pytest.mark.spark
ROUTES = ["/status/404/x.jpg", "/status/500/x.jpg", "/slow/x.jpg", "/noai/x.jpg", "/private/x.jpg",
          "/redirect-private/x.jpg", "/truncated/x.jpg", "/bomb/x.gif", "/broken/x.png"]


@pytest.fixture(scope="module")
def server(shared_data):
    with ImageServer(slow_seconds=5) as s:
        yield s


@pytest.fixture(scope="module")
def docs_dir(server, tmp_path_factory):
    base = server.url
    words = "This is a sentence about a picture that a person took on a trip last year."
    docs = []
    for i in range(12):  # documents whose images all download, found by path hash among the real photos
        images = [None, f"{base}/site{i}.example/a{i}.jpg", None, f"{base}/site{i}.example/b{i}.jpg", None]
        docs.append(doc(f"ok-{i:02d}", f"https://site{i}.example/p", [words, None, words, None, words], images))
    for j, route in enumerate(ROUTES):  # one failure each, next to a shared good image
        docs.append(doc(f"bad-{j}", f"https://bad{j}.example/p", [words, None, words, None],
                        [None, f"{base}{route}", None, f"{base}/shared/good.jpg"]))
    robots = doc("robots", "https://robots.example/p", [words, None], [None, f"{base}/shared/good.jpg"])
    robots["meta_robots"] = "noai"
    docs.append(robots)
    folder = tmp_path_factory.mktemp("docs")
    half = len(docs) // 2
    pq.write_table(pa.Table.from_pylist(docs[:half], DOCS_SCHEMA), folder / "part-a.parquet")
    pq.write_table(pa.Table.from_pylist(docs[half:], DOCS_SCHEMA), folder / "part-b.parquet")
    return folder


def settings(server):
    return ["--set", f"images.allow_hosts=['127.0.0.1:{server.port}']", "--set", "images.timeout=2",
            "--set", "images.retries=0", "--set", "images.urls_per_unit=8", "--set", "images.download_batch=3",
            "--set", "images.min_side=1", "--set", "images.min_aspect=0.1", "--set", "images.max_aspect=10"]


@pytest.fixture(scope="module")
def images_out(server, docs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("images") / "out"
    stats = images_job.main(["--input", str(docs_dir), "--output", str(out), *settings(server)])
    return out, stats


def test_images_stage_accounts_for_every_url_position_and_document(images_out):
    out, stats = images_out
    urls = duckdb.sql(f"select url, status, reason from '{out}/_images/*.parquet'").fetchall()
    assert len(urls) == len({u for u, _, _ in urls}) == stats["urls"]["unique"]
    assert stats["urls"]["unique"] == sum(stats["urls"]["status"].values())
    reasons = {u.split("/", 3)[3]: r for u, _, r in urls}
    assert reasons["status/404/x.jpg"] == "http_404" and reasons["redirect-private/x.jpg"] == "private_address"
    assert reasons["bomb/x.gif"] == "decompression_bomb" and reasons["truncated/x.jpg"] == "corrupt"
    # The noai page's image is requested anyway (other pages use it) but never joined into it.
    t, n = stats["tally"], stats["nodes"]["dropped"]
    assert t["images_in"] == t["images_kept"] + sum(n.values())
    assert n["image_page_robots"] == 1 and n["image_timeout"] == 1 and n["image_x_robots_tag"] == 1
    d = stats["docs"]
    assert d["in"] == d["out"] + sum(d["dropped"].values()) == 22
    assert d["dropped"] == {"too_few_images": 1}
    rejected = duckdb.sql(f"select doc_id, reason from '{out}/_rejected/*.parquet'").fetchall()
    assert rejected == [("robots", "too_few_images")]
    kept = duckdb.sql(f"select count(*), sum(len(image_info)) from '{out}/*.parquet'").fetchall()[0]
    assert kept[0] == d["out"]
    # open_nsfw scored every image that passed its checks, and none of these real pictures is unsafe
    scores = duckdb.sql(f"select status, nsfw from '{out}/_images/*.parquet'").fetchall()
    assert all((s is not None) == (status == "ok") for status, s in scores)
    assert max(s for _, s in scores if s is not None) < 0.2
    assert stats["urls"]["nsfw"] == {"scored": stats["urls"]["status"]["ok"], "unsafe": 0}
    info = duckdb.sql(f"select i.nsfw from (select unnest(image_info) i from '{out}/*.parquet') where i is not null")
    assert all(s is not None for (s,) in info.fetchall())


def test_an_unsafe_image_removes_every_document_that_holds_it(server, docs_dir, tmp_path):
    """A stand-in classifier flags the reddest picture the documents download; each document that
    holds it goes to _rejected as image_nsfw with its sha256, and the counts balance."""
    import hashlib

    from pipeline.config import load_config
    from pipeline.images.safety import SafetyModel

    model_settings = [f"images.nsfw.model={red_classifier(tmp_path / 'red.onnx')}", *RED_CLASSIFIER_SETTINGS]
    model = SafetyModel(load_config(overrides=model_settings).images.nsfw)
    docs = pq.read_table(docs_dir).to_pylist()
    served = {}  # url -> the file the server answers it with, for URLs that download
    for d in docs:
        for url in filter(None, d["images"]):
            path = url[len(server.url):]
            if path.startswith(("/site", "/shared/")):
                served[url] = server.image_for(path)
    redness = {f: float(model.scores([model.prepare(Image.open(f))])[0]) for f in set(served.values())}
    reddest, runner_up = sorted(redness.values())[-1], sorted(redness.values())[-2]
    flagged = next(f for f, r in redness.items() if r == reddest)
    expected = sorted(d["doc_id"] for d in docs if d["meta_robots"] is None
                      and any(served.get(u) == flagged for u in d["images"]))
    overrides = [*model_settings, f"images.nsfw.threshold={(reddest + runner_up) / 2}"]
    out = tmp_path / "out"
    stats = images_job.main(["--input", str(docs_dir), "--output", str(out), *settings(server),
                             *[a for o in overrides for a in ("--set", o)]])
    rejected = duckdb.sql(f"select doc_id, detail from '{out}/_rejected/*.parquet' where reason = 'image_nsfw' "
                          f"order by doc_id").fetchall()
    assert expected and [r[0] for r in rejected] == expected
    assert {r[1] for r in rejected} == {hashlib.sha256(flagged.read_bytes()).hexdigest()}
    d = stats["docs"]
    assert d["dropped"]["image_nsfw"] == len(expected) and d["in"] == d["out"] + sum(d["dropped"].values())
    assert stats["urls"]["nsfw"]["unsafe"] == sum(1 for f in set(served.items()) if f[1] == flagged)


def test_images_stage_resumes_without_downloading_again(server, docs_dir, images_out):
    out, first = images_out
    before = {p: p.read_bytes() for p in sorted(out.glob("*.parquet"))}
    requests = len(server.paths)
    again = images_job.main(["--input", str(docs_dir), "--output", str(out), *settings(server)])
    assert again["units"]["skipped"] == 2 and len(server.paths) == requests
    assert {p: p.read_bytes() for p in sorted(out.glob("*.parquet"))} == before
    assert again["docs"] == first["docs"]


@pytest.fixture(scope="module")
def shards_out(images_out, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "out"
    stats = shards_job.main(["--input", str(images_out[0]), "--output", str(out), "--format", "obelics",
                             "--set", "shards.target_bytes=200000", "--set", "shards.row_group_bytes=150000"])
    return out, stats


def test_shards_verify_and_hold_every_document_once(images_out, shards_out):
    out, stats = shards_out
    assert stats["shards"] > 1 and stats["docs"]["in"] == stats["docs"]["out"] == images_out[1]["docs"]["out"]
    report = verify.main([str(out), "--set", "shards.row_group_bytes=150000"])
    assert report["problems"] == [] and report["rows"] == stats["docs"]["out"]
    assert report["row_groups"] > report["files"]  # the 150 kB cap split files into several groups
    # The OBELICS layout: same documents, URLs for images, JSON metadata.
    row = pq.read_table(f"{out}-obelics").to_pylist()[0]
    meta = [json.loads(row["metadata"])[i] for i, u in enumerate(row["images"]) if u]
    assert meta[0]["src"] == next(u for u in row["images"] if u) and meta[0]["format"]
    assert set(json.loads(row["general_metadata"])) == {"url", "warc_filename", "warc_record_offset",
                                                        "warc_record_length"}
    # Each folder is one table for the usual readers.
    import pandas as pd

    assert len(pd.read_parquet(out)) == len(pd.read_parquet(f"{out}-obelics")) == stats["docs"]["out"]


def test_verify_catches_a_corrupted_shard(shards_out, tmp_path):
    import pyarrow as pa

    path = next(Path(shards_out[0]).glob("part-*.parquet"))
    rows = pq.read_table(path).to_pylist()
    i = next(k for k, u in enumerate(rows[0]["images"]) if u)
    rows[0]["image_bytes"][i] = rows[0]["image_bytes"][i][:100]
    pq.write_table(pa.Table.from_pylist(rows, pq.read_schema(path)), tmp_path / "part-x.parquet")
    problems = verify.main([str(tmp_path)])["problems"]
    assert any("sha256" in p for p in problems) and any("does not decode" in p for p in problems)


def test_shards_are_deterministic_and_train(images_out, shards_out, tmp_path):
    again = tmp_path / "again"
    shards_job.main(["--input", str(images_out[0]), "--output", str(again), "--format", "obelics",
                     "--set", "shards.target_bytes=200000", "--set", "shards.row_group_bytes=150000"])
    first = sorted(Path(shards_out[0]).rglob("part-*.parquet"))
    assert [p.read_bytes() for p in first] == [(again / p.relative_to(shards_out[0])).read_bytes() for p in first]
    from model import train

    records = train.main(["--shards", str(shards_out[0]), "--out", str(tmp_path / "run"), "--config", "tiny",
                          "--steps", "2"])
    assert len(records) == 2 and all(r["images"] > 0 for r in records)


def test_a_failed_download_unit_leaves_stats_and_fails_the_stage(server, docs_dir, images_out, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(images_out[0], out)
    shutil.rmtree(out / "_work" / "downloaded")  # the plan stands; the downloads and the join must run again
    shutil.rmtree(out / "_units")
    for part in out.glob("*.parquet"):
        part.unlink()
    shutil.rmtree(out / "_images")
    (out / "_images").write_text("a file where the images table should go")
    stats = images_job.main(["--input", str(docs_dir), "--output", str(out), *settings(server)])
    assert stats["units"]["failed"] >= 1 and stats["failures"]
    saved = json.loads((out / "_stats.json").read_text())
    assert saved["units"]["failed"] == stats["units"]["failed"] and "download bucket" in saved["failures"][0]["unit"]
    assert not list(out.glob("*.parquet"))  # the join did not run with images missing


def test_a_failed_shard_leaves_stats_and_fails_the_stage(images_out, tmp_path):
    import shutil
    import subprocess
    import sys

    source = tmp_path / "images"
    shutil.copytree(images_out[0], source)
    for part in (source / "_images").glob("*.parquet"):  # the image bytes are gone: no shard can be complete
        empty = pq.read_table(part).slice(0, 0)
        pq.write_table(empty, part)
    out = tmp_path / "shards"
    done = subprocess.run([sys.executable, "-m", "jobs.shards", "--input", str(source), "--output", str(out)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert done.returncode == 1
    saved = json.loads((out / "_stats.json").read_text())
    assert saved["units"]["failed"] == 1 and "image bytes missing" in saved["failures"][0]["error"]
    # A folder that is not the images stage's (one part per URL bucket) is refused before any work.
    next((source / "_images").glob("*.parquet")).rename(source / "_images" / "part-other.parquet")
    done = subprocess.run([sys.executable, "-m", "jobs.shards", "--input", str(source), "--output", str(tmp_path / "x")],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert done.returncode != 0 and "not an images stage's _images folder" in done.stderr
