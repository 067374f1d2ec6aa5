"""Real pages from ../shared/data/html as (url, body, content type), their documents, and WARCs and
training shards built from them, for the benchmarks, the tests and the demo. Trafilatura's pages
carry their real URLs; readability's pages carry none, so each gets a made-up one under example.org."""
from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from pipeline.warc import write_warc

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def shared_html_pages(data: Path = SHARED_DATA) -> list[tuple[str, bytes, str]]:
    pages = []
    folder = data / "html" / "trafilatura"
    gold = json.loads((folder / "gold-snippets.json").read_text())
    named = {entry["file"]: url for url, entry in gold.items() if url.startswith(("http://", "https://"))}
    for path in sorted(folder.glob("*.html")):
        url = named.get(path.name, f"https://{path.stem}.example.org/")
        pages.append((url, path.read_bytes(), "text/html"))
    for path in sorted((data / "html" / "readability").glob("*/source.html")):
        pages.append((f"https://{path.parent.name}.example.org/article/index.html", path.read_bytes(), "text/html"))
    return pages


def build_pages_warc(path: Path, data: Path = SHARED_DATA) -> Path:
    """One WARC holding each shared page once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        write_warc(out, shared_html_pages(data))
    tmp.rename(path)
    return path


def build_warcs(out_dir: Path, total_bytes: int, files: int, data: Path = SHARED_DATA) -> list[Path]:
    """Write `files` WARCs holding together at least `total_bytes` of HTML, the shared pages repeated
    under distinct URLs. Reuses files already built with the same arguments."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"pages-{total_bytes}-{i:02d}-of-{files:02d}.warc.gz" for i in range(files)]
    if all(p.exists() for p in paths):
        return paths
    pages = shared_html_pages(data)
    per_file = total_bytes // files + 1
    copy = 0
    for path in tqdm(paths, desc="building benchmark WARCs", unit="file"):
        written, batch = 0, []
        while written < per_file:
            url, body, ctype = pages[copy % len(pages)]
            batch.append((f"{url}{'&' if '?' in url else '?'}copy={copy}", body, ctype))
            written += len(body)
            copy += 1
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            write_warc(out, batch)
        tmp.rename(path)
    return paths


def extracted_docs(data: Path = SHARED_DATA) -> list[dict]:
    """The shared HTML pages as the extract stage's rows (doc_id and url: the page's URL)."""
    from pipeline.config import load_config
    from pipeline.extract.dom import DomRules
    from pipeline.extract.record import extract_html

    cfg = load_config().extract
    rules, docs = DomRules(cfg.dom), []
    for url, body, _ in shared_html_pages(data):
        doc = extract_html(body, url, cfg, rules)
        if doc is not None:
            docs.append({**doc, "doc_id": url, "url": url})
    return docs


def build_sample_shards(out_dir: Path, docs: int, data: Path = SHARED_DATA, rows_per_group: int = 16) -> list[Path]:
    """Training shards of the final schema (texts, images, image_bytes aligned) made of real text
    (the shared HTML pages' paragraphs) and real photos, for the trainer's tests and benchmark until
    the shards stage produces the real thing."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    photos = sorted((data / "images" / "photos").glob("*")) + sorted(
        p for p in (data / "images" / "skimage").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [(f"https://images.example.org/{p.name}", p.read_bytes()) for p in photos]
    paragraphs = [p for _, body, _ in shared_html_pages(data) for p in _paragraphs(body)]
    rng = random.Random(0)
    rows = []
    for i in range(docs):
        texts, urls, blobs = [], [], []
        for _ in range(rng.randint(1, 4)):
            url, blob = rng.choice(images)
            texts += [None, " ".join(rng.sample(paragraphs, 2))]
            urls += [url, None]
            blobs += [blob, None]
        rows.append({"doc_id": f"sample-{i:05d}", "texts": texts, "images": urls, "image_bytes": blobs})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "shard-00000.parquet"
    schema = pa.schema([("doc_id", pa.string()), ("texts", pa.list_(pa.string())), ("images", pa.list_(pa.string())),
                        ("image_bytes", pa.list_(pa.binary()))])
    pq.write_table(pa.Table.from_pylist(rows, schema), path, row_group_size=rows_per_group)
    return [path]


def _paragraphs(body: bytes) -> list[str]:
    from pipeline.extract.record import extract_html

    doc = extract_html(body, "https://example.org/")
    return [p for t in doc["texts"] if t for p in t.split("\n\n") if 80 < len(p) < 600] if doc else []
