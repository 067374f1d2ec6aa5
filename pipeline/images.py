"""The images stage's pure parts: consent, the private-network guard, downloading through
img2dataset, decoding and hashing under limits, the evaluation-image check, and the join back into
documents.

Every image URL ends in one row of the `_images` table: status "ok" with its bytes, or "refused"
(consent, private network), "failed" (download) or "rejected" (decoding and image filters), with the
counted `reason` and the message behind it in `error`.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import ipaddress
import os
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import urllib.robotparser
import warnings

import numpy as np
import pyarrow as pa

from pipeline.config import ImagesConfig
from pipeline.schema import IMAGE_INFO_TYPE, IMAGES_SCHEMA, aligned_lists
from pipeline.stats import UnitStats

INFO_FIELDS = [field.name for field in IMAGE_INFO_TYPE]

# ---------------------------------------------------------------- consent

def page_refuses(meta_robots: str | None, cfg: ImagesConfig) -> bool:
    """Whether a page's own <meta name="robots"> content ("noai, noimageai") refuses its images."""
    tokens = set(re.split(r"[\s,]+", (meta_robots or "").lower()))
    return bool(tokens & set(cfg.page_directives))


# ---------------------------------------------------------------- the private-network guard

class Refused(OSError):
    """A request webweave will not make; `reason` is its counted reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"webweave refused ({reason}): {detail}")
        self.reason = reason


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressGuard:
    """Resolves a host and refuses it unless every address is public or the host is allowlisted.
    Connections go to the addresses checked here, so a DNS answer cannot change between check and
    connect, and every redirect hop passes through the same check."""

    def __init__(self, allow_hosts=()):
        self.allow = {h.lower() for h in allow_hosts}

    def addresses(self, host: str, port: int) -> list[tuple]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused("dns_error", f"{host}: {exc}") from None
        if host.lower() in self.allow or f"{host.lower()}:{port}" in self.allow:
            return infos
        for *_, sockaddr in infos:
            if not public_address(sockaddr[0]):
                raise Refused("private_address", f"{host} resolves to {sockaddr[0]}")
        return infos

    def connect(self, host: str, port: int, timeout) -> socket.socket:
        error: OSError | None = None
        for family, type_, proto, _, sockaddr in self.addresses(host, port):
            sock = socket.socket(family, type_, proto)
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"no address for {host}")

    def check_url(self, url: str) -> None:
        """Raise Refused for a URL that must not be fetched at all."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused("bad_url", url)
        self.addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, guard: AddressGuard, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = guard

    def connect(self):
        self.sock = self.guard.connect(self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, guard: AddressGuard, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = guard

    def connect(self):
        self.sock = self._context.wrap_socket(self.guard.connect(self.host, self.port, self.timeout),
                                              server_hostname=self.host)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: AddressGuard):
        super().__init__()
        self.guard = guard

    def http_open(self, req):
        return self.do_open(lambda host, **kw: _GuardedHTTPConnection(self.guard, host, **kw), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: AddressGuard):
        super().__init__()
        self.guard = guard

    def https_open(self, req):
        return self.do_open(lambda host, **kw: _GuardedHTTPSConnection(self.guard, host, **kw), req,
                            context=self._context)


class _BodyLimit(urllib.request.BaseHandler):
    """Bodies over `max_bytes` are refused, by Content-Length before reading or while reading, and so
    are bodies still arriving after `max_seconds`: a socket timeout bounds each wait, not a server
    that sends a byte every few seconds."""
    handler_order = 400
    CHUNK = 1 << 16

    def __init__(self, max_bytes: int, max_seconds: float):
        self.max_bytes, self.max_seconds = max_bytes, max_seconds

    def http_response(self, request, response):
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            response.close()
            raise Refused("too_large", f"Content-Length {length} > {self.max_bytes}")
        read, cap, deadline = response.read1, self.max_bytes, time.monotonic() + self.max_seconds

        def limited_read(amt=None):
            parts, size = [], 0
            limit = cap + 1 if amt is None else min(amt, cap + 1)
            while size < limit:
                if time.monotonic() > deadline:
                    raise Refused("too_slow", f"body still arriving after {self.max_seconds:g} s")
                part = read(min(self.CHUNK, limit - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
            if size > cap:
                raise Refused("too_large", f"body over {cap} bytes")
            return b"".join(parts)

        response.read = limited_read
        return response

    https_response = http_response


class _NoFTP(urllib.request.FTPHandler):
    def ftp_open(self, req):
        raise Refused("bad_url", f"{req.full_url}: only http and https are fetched")


class _NoFile(urllib.request.FileHandler):
    def file_open(self, req):
        raise Refused("bad_url", f"{req.full_url}: only http and https are fetched")


class _NoData(urllib.request.DataHandler):
    def data_open(self, req):
        raise Refused("bad_url", f"{req.full_url[:40]}: only http and https are fetched")


def guarded_opener(guard: AddressGuard, max_bytes: int, max_seconds: float = 60.0) -> urllib.request.OpenerDirector:
    """An opener that never connects to a private network and never reads an unbounded body.
    Proxies from the environment are ignored (a proxy would do the connecting for us, unchecked), and
    urllib's ftp:, file: and data: handlers are replaced by refusals: a redirect may point to ftp://."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _GuardedHTTPHandler(guard),
                                       _GuardedHTTPSHandler(guard), _NoFTP(), _NoFile(), _NoData(),
                                       _BodyLimit(max_bytes, max_seconds))


# ---------------------------------------------------------------- robots.txt

class RobotsCache:
    """robots.txt of each image host, fetched once. Per RFC 9309: 4xx means no rules; 5xx or an
    unreachable host means everything is disallowed (urllib's own parser reads 401/403 as a ban)."""

    def __init__(self, opener, user_agent: str, timeout: float):
        self.opener, self.user_agent, self.timeout = opener, user_agent, timeout
        self.rules: dict[str, urllib.robotparser.RobotFileParser | bool] = {}
        self.lock = threading.Lock()

    def _fetch(self, origin: str):
        try:
            with self.opener.open(urllib.request.Request(origin + "/robots.txt", headers={
                    "User-Agent": f"Mozilla/5.0 (compatible; {self.user_agent})"}), timeout=self.timeout) as r:
                text = r.read(512_000).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return 400 <= exc.code < 500  # True: no rules; False: all disallowed
        except (OSError, http.client.HTTPException):
            return False
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(text.splitlines())
        return parser

    def allowed(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            if origin not in self.rules:
                self.rules[origin] = self._fetch(origin)
            rules = self.rules[origin]
        return rules if isinstance(rules, bool) else rules.can_fetch(self.user_agent, url)


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


def precheck(urls: list[str], guard: AddressGuard, robots: RobotsCache | None, threads: int) -> dict[str, str | None]:
    """url → why it must not be requested (None: go ahead). Each origin is resolved and its robots.txt
    read once, origins in parallel: a unit's hosts cost one DNS lookup and one robots.txt each, not
    a serial wait per URL."""
    from multiprocessing.pool import ThreadPool

    by_origin: dict[str, list[str]] = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        by_origin.setdefault(f"{parts.scheme}://{parts.netloc}", []).append(url)

    def check(origin_urls: list[str]) -> dict[str, str | None]:
        try:
            guard.check_url(origin_urls[0])  # scheme and host are the origin's: one check for all
        except Refused as exc:
            return dict.fromkeys(origin_urls, str(exc))
        out: dict[str, str | None] = {}
        for url in origin_urls:
            allowed = robots is None or robots.allowed(url)
            out[url] = None if allowed else str(Refused(
                "robots_txt", f"robots.txt of {urllib.parse.urlsplit(url).netloc} disallows it"))
        return out

    verdicts: dict[str, str | None] = {}
    with ThreadPool(max(1, min(threads, len(by_origin)))) as pool:
        for part in pool.imap_unordered(check, by_origin.values()):
            verdicts.update(part)
    return verdicts


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


# ---------------------------------------------------------------- decode, hash, filter

def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)


def phash(image) -> int:
    """64-bit perceptual hash: the 8×8 lowest frequencies of the DCT of a 32×32 grey image, each bit
    set where the coefficient is above their median. Returned as a signed int64 for parquet."""
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low)
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: np.ndarray, b: int) -> np.ndarray:
    """Bit distances between an int64 array of hashes and one hash."""
    return np.bitwise_count(np.bitwise_xor(a.view(np.uint64), np.uint64(b & ((1 << 64) - 1))))


class EvalImages:
    """Evaluation images to keep out of the training data: exact sha256 and pHash neighbours."""

    def __init__(self, table=None, max_distance: int = 4):
        rows = table.to_pylist() if table is not None else []
        self.sha256 = {r["sha256"]: f"{r['set']}:{r['item']}" for r in rows if r["sha256"]}
        with_phash = [r for r in rows if r["phash"] is not None]
        self.phashes = np.array([r["phash"] for r in with_phash], dtype=np.int64)
        self.names = [f"{r['set']}:{r['item']}" for r in with_phash]
        self.max_distance = max_distance

    def match_sha256(self, sha: str) -> str | None:
        return self.sha256.get(sha)

    def match_phash(self, value: int) -> str | None:
        if not len(self.phashes):
            return None
        distances = hamming(self.phashes, value)
        best = int(np.argmin(distances))
        return self.names[best] if distances[best] <= self.max_distance else None


_ORIENTATION = 0x0112
_SAVE_FORMAT = {"mpo": "JPEG"}


def _encode(image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    save_as = _SAVE_FORMAT.get(fmt, fmt.upper())
    if save_as == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    image.save(out, format=save_as, quality=quality)
    return out.getvalue()


def inspect_image(data: bytes, cfg: ImagesConfig, evals: EvalImages) -> dict:
    """One downloaded image through decoding, the image filters and the evaluation check: an
    `_images` row without its url. Costs are bounded: dimensions are checked against the pixel
    budget from the header, before any pixel is decoded."""
    with warnings.catch_warnings():
        # Pillow warns about every odd EXIF tag of hostile files; the outcome is in the row instead.
        warnings.simplefilter("ignore")
        return _inspect(data, cfg, evals)


def _inspect(data: bytes, cfg: ImagesConfig, evals: EvalImages) -> dict:
    from PIL import Image, ImageOps

    sha = hashlib.sha256(data).hexdigest()
    row = {"status": "rejected", "reason": None, "error": None, "sha256": sha, "phash": None, "width": None,
           "height": None, "format": None, "bytes": None, "bytes_sha256": None}

    def reject(reason: str, error: str) -> dict:
        row.update(reason=reason, error=error)
        return row

    hit = evals.match_sha256(sha)
    if hit:
        return reject("eval_image_exact", hit)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        return reject("decompression_bomb", str(exc))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on hostile bytes
        return reject("undecodable", f"{type(exc).__name__}: {exc}")
    fmt = (image.format or "").lower()
    width, height = image.size
    try:
        orientation = image.getexif().get(_ORIENTATION, 1) if fmt in ("jpeg", "mpo", "webp", "png", "tiff") else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to lose the picture
        orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    row.update(format=fmt, width=width, height=height)
    if width * height > cfg.max_pixels:
        return reject("decompression_bomb", f"{width}x{height} over {cfg.max_pixels} pixels")
    if fmt not in cfg.formats:
        return reject("format", fmt)
    if min(width, height) < cfg.min_side:
        return reject("too_small", f"{width}x{height}")
    if max(width, height) > cfg.max_side:
        return reject("too_big", f"{width}x{height}")
    if not cfg.min_aspect <= width / height <= cfg.max_aspect:
        return reject("aspect_ratio", f"{width}x{height}")
    longest = cfg.resize_longest_side
    shrink = 0 < longest < max(width, height)
    try:
        if fmt in ("jpeg", "mpo"):
            # Decode at the smallest scale the work needs: libjpeg scales by 1/2..1/8 while it decodes,
            # yet still reads every byte, so a truncated file is still caught.
            image.draft("RGB", (longest, longest) if shrink else (64, 64))
        image.load()
    except Exception as exc:  # noqa: BLE001
        return reject("corrupt", f"{type(exc).__name__}: {exc}")
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    row["phash"] = phash(upright)
    hit = evals.match_phash(row["phash"])
    if hit:
        return reject("eval_image_near", hit)
    stored = data
    if shrink or orientation != 1:
        if shrink:
            if fmt not in ("jpeg", "mpo"):
                upright = upright.copy()
            upright.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        elif fmt in ("jpeg", "mpo") and upright.size != (width, height):
            # drafted for the hash only: decode again at full size to re-encode
            upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        stored = _encode(upright, fmt, cfg.jpeg_quality)
    row.update(status="ok", bytes=stored, bytes_sha256=hashlib.sha256(stored).hexdigest())
    return row


def fetch_and_inspect(urls: list[str], cfg: ImagesConfig, evals: EvalImages, progress=None,
                      fetcher: Fetcher | None = None) -> list[dict]:
    """`_images` rows for `urls`, in their order. A unit passes its own `fetcher` to every batch."""
    fetched = (fetcher or Fetcher(cfg)).download(urls)
    rows = []
    for url in urls:
        data, error = fetched.get(url, (None, "missing from the downloader's output"))
        if data is None:
            reason = download_reason(error)
            status = "refused" if reason in REFUSALS else "failed"
            rows.append({**_empty_row(), "url": url, "status": status, "reason": reason, "error": error})
        else:
            rows.append({"url": url, **inspect_image(data, cfg, evals)})
        if progress is not None:
            progress()
    return rows


REFUSALS = {"private_address", "robots_txt", "x_robots_tag", "bad_url"}


def _empty_row() -> dict:
    return {name: None for name in IMAGES_SCHEMA.names}


# ---------------------------------------------------------------- join back into documents

def join_images(row: dict, info: dict[str, dict], cfg: ImagesConfig, stats: UnitStats):
    """Remove the image positions that did not end "ok" (counted as image_<reason>), merge the texts
    that became adjacent, align `image_info`, and reject documents with too few or too many images.
    Returns the row and its drop reason (None when kept)."""
    refused_page = page_refuses(row.get("meta_robots"), cfg)
    items, infos, seen = [], [], set()
    for text, url, meta in zip(row["texts"], row["images"], row["image_meta"]):
        if url is None:
            items.append((text, None, None))
            continue
        stats.tally["images_in"] += 1
        image = info.get(url)
        if refused_page:
            reason = "page_robots"
        elif url in seen:
            reason = "repeated_in_document"
        elif image is None:
            reason = "not_downloaded"
        elif image["status"] != "ok":
            reason = image["reason"]
        else:
            reason = None
        if reason is not None:
            stats.nodes[f"image_{reason}"] += 1
            continue
        seen.add(url)
        items.append((None, url, meta))
        infos.append({k: image.get(k) for k in INFO_FIELDS})
    texts, images, metas = aligned_lists(items)
    queue = iter(infos)
    image_info = [next(queue) if url is not None else None for url in images]
    out = {**row, "texts": texts, "images": images, "image_meta": metas, "image_info": image_info}
    n = len(infos)
    stats.tally["images_kept"] += n
    if n < cfg.min_images:
        return out, "too_few_images"
    if n > cfg.max_images:
        return out, "too_many_images"
    if all(t is None for t in texts):
        return out, "no_text"
    stats.tally["images_out"] += n
    return out, None
