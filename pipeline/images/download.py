"""Downloads through img2dataset's downloader (its thread pool, retries and X-Robots-Tag check), with
the guard's opener in place of urllib's, and the counted reason of each failure.

img2dataset's public `download()` runs a whole distributor and, like its Downloader, fetches with
urllib.request.urlopen: neither takes an opener, so the guarded one is installed for the call (under
a lock, then restored), and reasons are read from its error messages."""
from __future__ import annotations

import os
import re
import tempfile
import threading
import urllib.request

import pyarrow as pa

from pipeline.config import ImagesConfig
from pipeline.images.guard import AddressGuard, RobotsCache, guarded_opener, precheck

REFUSALS = {"private_address", "robots_txt", "x_robots_tag", "bad_url"}  # reasons that mean "not asked"


# ---------------------------------------------------------------- download

_REASONS = [
    (re.compile(r"webweave refused \((\w+)\)"), None),
    (re.compile(r"X-Robots-Tag"), "x_robots_tag"),
    (re.compile(r"HTTP Error (\d{3})"), "http_{}"),
    (re.compile(r"timed out|timeout", re.I), "timeout"),
    (re.compile(r"Connection refused|Connection reset|Remote end closed|IncompleteRead", re.I), "connection_error"),
]


def download_reason(message: str) -> str:
    """The counted reason of an img2dataset error message."""
    for pattern, reason in _REASONS:
        m = pattern.search(message)
        if m:
            return m.group(1) if reason is None else reason.format(*m.groups())
    return "download_error"


_OPENER_LOCK = threading.Lock()


class Fetcher:
    """Downloads for one unit: the guard, the guarded opener and the robots.txt cache live as long as
    the unit, so a host's robots.txt is read once however many batches ask for its images."""

    def __init__(self, cfg: ImagesConfig):
        self.cfg = cfg
        self.guard = AddressGuard(cfg.allow_hosts)
        self.opener = guarded_opener(self.guard, cfg.max_bytes, cfg.max_seconds)
        self.robots = RobotsCache(self.opener, cfg.user_agent_token, cfg.timeout) if cfg.robots_txt else None

    def download(self, urls: list[str]) -> dict[str, tuple[bytes | None, str | None]]:
        """url → (bytes, None) or (None, error message), fetched by img2dataset's downloader (its
        thread pool, retries and X-Robots-Tag check) through the guarded opener. Consent and the
        address check come first: a refused URL costs no request to its host."""
        return _download(urls, self.cfg, self.guard, self.opener, self.robots)


def _download(urls, cfg: ImagesConfig, guard, opener, robots) -> dict[str, tuple[bytes | None, str | None]]:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # importing img2dataset must not phone home
    import pyarrow.feather as feather
    import pyarrow.parquet as pq
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer
    from img2dataset.writer import ParquetSampleWriter

    refusals = precheck(urls, guard, robots, cfg.threads)
    results: dict[str, tuple[bytes | None, str | None]] = {u: (None, e) for u, e in refusals.items() if e}
    to_fetch = [u for u in urls if not refusals[u]]
    if not to_fetch:
        return results
    with tempfile.TemporaryDirectory(prefix="webweave-img2dataset-") as tmp, _OPENER_LOCK:
        feather.write_feather(pa.table({"url": to_fetch}), f"{tmp}/0.feather", compression="uncompressed")
        downloader = Downloader(
            sample_writer_class=ParquetSampleWriter,
            # webweave decodes with Pillow under its own pixel budget; img2dataset keeps the bytes as sent.
            resizer=Resizer(image_size=0, resize_mode="no", resize_only_if_bigger=True, disable_all_reencoding=True),
            thread_count=cfg.threads, save_caption=False, extract_exif=False, output_folder=tmp,
            column_list=["url"], timeout=cfg.timeout, number_sample_per_shard=max(10, len(to_fetch)),
            oom_shard_count=1, compute_hash=None, verify_hash_type=None, encode_format="jpg",
            retries=cfg.retries, user_agent_token=cfg.user_agent_token,
            disallowed_header_directives=list(cfg.header_directives))
        previous = urllib.request._opener  # img2dataset calls urllib.request.urlopen
        urllib.request.install_opener(opener)
        try:
            ok, _ = downloader((0, f"{tmp}/0.feather"))
        finally:
            urllib.request._opener = previous
        if not ok:
            raise RuntimeError("img2dataset's downloader failed on this unit (its traceback is in the log)")
        table = pq.read_table(f"{tmp}/0.parquet", columns=["url", "status", "error_message", "jpg"])
    for url, status, error, data in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        results[url] = (data, None) if status == "success" else (None, error or status)
    return results
