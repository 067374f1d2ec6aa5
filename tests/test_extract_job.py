"""The extract job end to end on Spark (local mode): the stage contract of DESIGN.md."""
import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from jobs import extract as extract_job
from jobs.common import run_stage
from pipeline.config import load_config
from pipeline.schema import DOCS_SCHEMA
from tests.helpers import validate_table

pytestmark = pytest.mark.spark


def run(args):
    return extract_job.main([*args, "--set", "spark.master=local[2]"])


def parquet_files(out: Path, sub: str = ""):
    return sorted((out / sub).glob("*.parquet"))


def count_rows(files):
    return sum(pq.read_metadata(f).num_rows for f in files)


@pytest.fixture(scope="module")
def first_run(warc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    stats = run(["--input", str(warc_dir), "--output", str(out)])
    return out, stats


def test_stats_add_up_and_match_the_files(first_run):
    out, stats = first_run
    saved = json.loads((out / "_stats.json").read_text())
    assert saved["docs"] == stats["docs"]
    docs = stats["docs"]
    assert docs["in"] == docs["out"] + sum(docs["dropped"].values())
    assert docs["out"] == count_rows(parquet_files(out)) > 80
    assert sum(docs["dropped"].values()) == count_rows(parquet_files(out, "_rejected"))
    assert stats["units"] == {"done": 8, "failed": 0, "skipped": 0}
    assert stats["warnings"]["truncated_record"] == 1
    assert stats["nodes"]["dropped"]["tag_script"] > 0
    assert (out / "_config.yaml").exists()


def test_output_schema_and_invariants(first_run):
    out, _ = first_run
    for part in parquet_files(out):
        table = pq.read_table(part)
        assert table.schema.equals(DOCS_SCHEMA)
        validate_table(table)


def test_duckdb_reads_the_directory_and_skips_bookkeeping(first_run):
    out, stats = first_run
    n = duckdb.sql(f"select count(*) from '{out}/*.parquet'").fetchall()[0][0]
    assert n == stats["docs"]["out"]
    reasons = dict(duckdb.sql(f"select reason, count(*) from '{out}/_rejected/*.parquet' group by 1").fetchall())
    assert reasons == stats["docs"]["dropped"]
    langs = duckdb.sql(f"select count(*) from '{out}/*.parquet' where warc.crawl = 'CC-MAIN-2020-34'").fetchall()[0][0]
    assert langs == 16


def test_rerun_skips_done_units_and_a_killed_unit_is_redone_identically(first_run, tmp_path):
    out, stats = first_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    warc_dir = Path(json.loads(next((copy / "_units").glob("*.json")).read_text())["unit"]).parent
    again = run(["--input", str(warc_dir), "--output", str(copy)])
    assert again["units"] == {"done": 8, "failed": 0, "skipped": 8}
    assert again["docs"] == stats["docs"]
    # Simulate a kill after the parquet was renamed but before the unit's stats were written.
    victim = parquet_files(copy)[0]
    before = victim.read_bytes()
    unit_json = copy / "_units" / (victim.name[len("part-"):-len(".parquet")] + ".json")
    unit_json.unlink()
    redo = run(["--input", str(warc_dir), "--output", str(copy)])
    assert redo["units"]["skipped"] == 7 and redo["docs"] == stats["docs"]
    assert victim.read_bytes() == before  # deterministic: same bytes as the first run
    assert not list(copy.rglob(".tmp-*"))


def test_same_input_gives_byte_identical_output(first_run, warc_dir, tmp_path):
    out, _ = first_run
    second = tmp_path / "second"
    extract_job.main(["--input", str(warc_dir), "--output", str(second), "--set", "spark.master=local[1]"])
    first = parquet_files(out) + parquet_files(out, "_rejected")
    again = parquet_files(second) + parquet_files(second, "_rejected")
    assert [p.relative_to(out) for p in first] == [p.relative_to(second) for p in again] and first
    for a, b in zip(first, again):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_failing_unit_is_recorded_and_does_not_stop_the_job(warc_dir, tmp_path):
    cfg = load_config(overrides=["spark.master=local[2]"])
    good = str(warc_dir / "cc-one-response.warc.gz")
    missing = str(tmp_path / "gone.warc.gz")
    stats = run_stage("extract", [good, missing], str(tmp_path / "out"), cfg, extract_job.extract_unit)
    assert stats["units"] == {"done": 1, "failed": 1, "skipped": 0}
    assert stats["failures"][0]["unit"] == missing and "gone.warc.gz" in stats["failures"][0]["error"]
    assert stats["docs"]["out"] == 1


def test_common_crawl_id_input_against_a_local_bucket_layout(warc_dir, tmp_path):
    bucket = tmp_path / "bucket"
    rel = "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/CC-MAIN-20240517233122-20240518023122-00000.warc.gz"
    (bucket / rel).parent.mkdir(parents=True)
    shutil.copy(warc_dir / "cc-main-2024-22-one-page.warc.gz", bucket / rel)
    listing = bucket / "crawl-data/CC-MAIN-2024-22/warc.paths.gz"
    listing.write_bytes(gzip.compress((rel + "\nnot/read.warc.gz\n").encode()))
    out = tmp_path / "out"
    stats = run(["--crawl", "CC-MAIN-2024-22", "--limit", "1", "--output", str(out),
                 "--set", f"extract.cc_base_url=file://{bucket}/"])
    assert stats["units"]["done"] == 1 and stats["docs"]["out"] == 1
    row = pq.read_table(parquet_files(out)[0]).to_pylist()[0]
    assert row["warc"]["filename"] == rel and row["warc"]["crawl"] == "CC-MAIN-2024-22"
    assert row["url"] == "https://an.wikipedia.org/wiki/Escopete" and row["domain"] == "an.wikipedia.org"


def test_input_list_file_and_globs(warc_dir, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{warc_dir}/cc-one-response.warc.gz\n# a comment\n")
    stats = run(["--input", str(listing), f"{warc_dir}/example-*.warc.gz", "--output", str(tmp_path / "o")])
    assert stats["units"]["done"] == 2


def test_bad_records_land_in_rejected_with_their_detail(tmp_path):
    from tests.test_warc import _warc_with_bad_records

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad-records.warc.gz").write_bytes(_warc_with_bad_records())
    stats = run(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")])
    assert stats["units"]["failed"] == 0
    assert stats["docs"]["out"] == 2
    assert stats["docs"]["dropped"] == {"bad_http_headers": 1, "no_target_uri": 1}
    rejected = pq.read_table(parquet_files(tmp_path / "out", "_rejected")).to_pylist()
    by_reason = {r["reason"]: r for r in rejected}
    assert "Expected Status Line" in by_reason["bad_http_headers"]["detail"]
    assert by_reason["no_target_uri"]["detail"] is None and by_reason["no_target_uri"]["stage"] == "extract"


def test_a_unit_through_the_reference_walk_writes_the_same_bytes(warc_dir, tmp_path, monkeypatch):
    from pipeline.extract import walk
    from tests import reference_walk

    cfg = load_config()
    path = str(warc_dir / "cc-main-2020-34-head.warc.gz")
    compiled = extract_job.extract_unit(path, str(tmp_path / "compiled"), cfg)
    monkeypatch.setattr(walk, "walk_page", reference_walk.walk_page)
    python = extract_job.extract_unit(path, str(tmp_path / "python"), cfg)
    assert python["warnings"] == compiled["warnings"] and python["docs"] == compiled["docs"]
    files = parquet_files(tmp_path / "compiled") + parquet_files(tmp_path / "compiled", "_rejected")
    assert files and [f.read_bytes() for f in files] == [
        (tmp_path / "python" / f.relative_to(tmp_path / "compiled")).read_bytes() for f in files] == [
        (tmp_path / "python" / f.relative_to(tmp_path / "compiled")).read_bytes() for f in files]
