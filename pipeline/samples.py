"""Real pages from ../shared/data/html as (url, body, content type), and WARCs built from them, for
the benchmarks, the tests and the demo. Trafilatura's pages carry their real URLs; readability's
pages carry none, so each gets a made-up one under example.org."""
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
