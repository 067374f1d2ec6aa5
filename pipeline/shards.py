"""Final training shards: the shuffle order, row groups that stream, the OBELICS export, and the
checks `jobs.verify` runs.

A shard row is a docs row of the images stage plus `image_bytes`, aligned with `images`: the bytes
of each image at its position, null at text positions.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import urllib.parse
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.schema import SHARD_FIELDS, document_problems, with_fields


def order_key(doc_id: str, seed: int) -> int:
    """The deterministic shuffle: documents are ordered by a keyed hash of their id."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8, key=seed.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big")


def shard_of(doc_id: str, seed: int, shards: int) -> int:
    return order_key(doc_id, seed + 1) % shards


def bucket_of(url: str, buckets: int) -> int:
    """An image URL's download unit in the images stage, whose `_images/part-<bucket>.parquet` holds
    it: the shards stage reads each URL's bytes from that part."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big") % buckets


def image_parts_by_bucket(paths: list[str]) -> list[str]:
    """The `_images` parts in bucket order; a folder that is not the images stage's (part-00000 … one
    per bucket) is refused, for the bytes of a URL are looked for in its bucket's part only."""
    named = {}
    for path in paths:
        found = re.fullmatch(r"part-(\d{5})\.parquet", path.rsplit("/", 1)[-1])
        if found:
            named[int(found.group(1))] = path
    if not paths or sorted(named) != list(range(len(paths))):
        raise ValueError("not an images stage's _images folder (part-00000.parquet … one part per URL bucket): "
                         + ", ".join(p.rsplit("/", 1)[-1] for p in paths[:5]))
    return [named[k] for k in range(len(paths))]


def row_bytes(row: dict) -> int:
    """About what a row costs in a row group: its texts and image bytes (images are compressed already)."""
    return sum(len(t.encode()) for t in row["texts"] if t) + sum(len(b) for b in row.get("image_bytes") or [] if b)


def shard_schema(docs_schema: pa.Schema) -> pa.Schema:
    return with_fields(docs_schema, SHARD_FIELDS)


def write_shard(path: str, rows: list[dict], schema: pa.Schema, row_group_bytes: int) -> None:
    """Rows (already in shuffle order) to one parquet file, atomically, with row groups cut before
    they pass `row_group_bytes` (a single larger document gets a row group of its own)."""
    tmp = storage.temporary_name(path)
    groups, group, size = [], [], 0
    for row in rows:
        cost = row_bytes(row)
        if group and size + cost > row_group_bytes:
            groups.append(group)
            group, size = [], 0
        group.append(row)
        size += cost
    if group or not groups:
        groups.append(group)
    with storage.open_write(tmp) as sink, pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for g in groups:
            writer.write_table(pa.Table.from_pylist(g, schema), row_group_size=max(1, len(g)))
    storage.commit(tmp, path)


# ---------------------------------------------------------------- OBELICS's released layout

def formatted_filename(src: str) -> str | None:
    """OBELICS's `formatted_filename`: the last path segment before its first dot, with separators,
    digits and NxM sizes turned into spaces; None when fewer than 2 characters remain."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(src).path.rsplit("/", 1)[-1]).split(".", 1)[0]
    name = re.sub(r"\d+x\d+", " ", name)
    name = re.sub(r"[_\-+%\d\n]", " ", name)
    name = " ".join(name.split())
    return name if len(name) > 1 else None


def obelics_row(row: dict) -> dict:
    """One shard row in the layout of HuggingFaceM4/OBELICS: images as URLs, texts, and the metadata
    and general_metadata JSON strings."""
    metadata = []
    for url, meta, info in zip(row["images"], row["image_meta"], row.get("image_info") or [None] * len(row["images"])):
        if url is None:
            metadata.append(None)
            continue
        item = {"document_url": row["url"], "src": url, "formatted_filename": formatted_filename(url),
                "alt_text": (meta or {}).get("alt"), "caption": (meta or {}).get("caption"),
                "rendered_width": (meta or {}).get("width_attr"), "rendered_height": (meta or {}).get("height_attr")}
        if info:
            item.update(original_width=info["width"], original_height=info["height"], format=info["format"])
        metadata.append({k: v for k, v in item.items() if v is not None})
    warc = row.get("warc") or {}
    general = {"url": row["url"], "warc_filename": warc.get("filename"), "warc_record_offset": warc.get("offset"),
               "warc_record_length": warc.get("length")}
    return {"images": row["images"], "texts": row["texts"], "metadata": json.dumps(metadata),
            "general_metadata": json.dumps(general)}


# ---------------------------------------------------------------- checks

def image_problems(row: dict, min_images: int, max_images: int) -> list[str]:
    """Ways a shard row's images break the shard invariants (bytes aligned, hashes, counts, decodable)."""
    from PIL import Image

    problems = []
    images, data, info = row["images"], row.get("image_bytes"), row.get("image_info")
    if data is None or info is None or len(data) != len(images) or len(info) != len(images):
        return ["image_bytes and image_info must be lists aligned with images"]
    n = sum(u is not None for u in images)
    if not min_images <= n <= max_images:
        problems.append(f"{n} images, outside [{min_images}, {max_images}]")
    seen = set()
    for i, (url, b, inf) in enumerate(zip(images, data, info)):
        if url is None:
            if b is not None or inf is not None:
                problems.append(f"position {i}: image bytes or info at a text position")
            continue
        if url in seen:
            problems.append(f"position {i}: image URL repeated in the document")
        seen.add(url)
        if b is None or inf is None:
            problems.append(f"position {i}: image without bytes or info")
            continue
        if hashlib.sha256(b).hexdigest() != inf["bytes_sha256"]:
            problems.append(f"position {i}: sha256 of image_bytes differs from image_info.bytes_sha256")
        try:
            with Image.open(io.BytesIO(b)) as image:
                image.load()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"position {i}: image does not decode: {type(exc).__name__}: {exc}")
    return problems


def verify_shards(paths: list[str], min_images: int, max_images: int, row_group_bytes: int) -> dict:
    """Every invariant of every row of every shard; the report lists the problems found."""
    report = {"files": len(paths), "rows": 0, "images": 0, "bytes": 0, "row_groups": 0, "problems": []}
    seen: Counter = Counter()
    for path in paths:
        with storage.open_random(path) as raw:
            parquet = pq.ParquetFile(raw)
            report["bytes"] += storage.size(path)
            for g in range(parquet.num_row_groups):
                report["row_groups"] += 1
                meta = parquet.metadata.row_group(g)
                if meta.num_rows > 1 and meta.total_byte_size > row_group_bytes:
                    report["problems"].append(f"{path}: row group {g} holds {meta.total_byte_size} bytes")
                for row in parquet.read_row_group(g).to_pylist():
                    report["rows"] += 1
                    seen[row["doc_id"]] += 1
                    report["images"] += sum(u is not None for u in row["images"])
                    for p in document_problems(row) + image_problems(row, min_images, max_images):
                        report["problems"].append(f"{path}: document {row['doc_id']}: {p}")
    report["problems"] += [f"document {d} appears {n} times" for d, n in seen.items() if n > 1]
    return report
