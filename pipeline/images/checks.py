"""One downloaded image, judged: decoded under a pixel budget, upright, filtered by format, size and
aspect (filters/image.py), perceptually hashed, checked against evaluation images, and re-encoded
when it is shrunk or turned."""
from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np

from filters.image import shape_reason
from pipeline.config import ImagesConfig
from pipeline.images.safety import SafetyQueue


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


def inspect_image(data: bytes, cfg: ImagesConfig, evals: EvalImages, safety: SafetyQueue | None = None) -> dict:
    """One downloaded image through decoding, the image filters and the evaluation check: an
    `_images` row without its url. Costs are bounded: dimensions are checked against the pixel
    budget from the header, before any pixel is decoded. A kept image goes to `safety`, which sets
    the row's `nsfw` when it scores its batch; an image that failed any check never reaches it."""
    with warnings.catch_warnings():
        # Pillow warns about every odd EXIF tag of hostile files; the outcome is in the row instead.
        warnings.simplefilter("ignore")
        return _inspect(data, cfg, evals, safety)


def _inspect(data: bytes, cfg: ImagesConfig, evals: EvalImages, safety: SafetyQueue | None) -> dict:
    from PIL import Image, ImageOps

    sha = hashlib.sha256(data).hexdigest()
    row = {"status": "rejected", "reason": None, "error": None, "sha256": sha, "phash": None, "width": None,
           "height": None, "format": None, "bytes": None, "bytes_sha256": None, "nsfw": None}

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
    shape = shape_reason(width, height, cfg.min_side, cfg.max_side, cfg.min_aspect, cfg.max_aspect)
    if shape:
        return reject(shape, f"{width}x{height}")
    longest = cfg.resize_longest_side
    shrink = 0 < longest < max(width, height)
    try:
        if fmt in ("jpeg", "mpo"):
            # Decode at the smallest scale the work needs (the stored size, or the safety model's input
            # size, which the hash is also taken at whether or not the model runs): libjpeg scales by
            # 1/2..1/8 while it decodes, yet still reads every byte, so a truncated file is still caught.
            side = longest if shrink else cfg.nsfw.resize
            image.draft("RGB", (side, side))
        image.load()
    except Exception as exc:  # noqa: BLE001
        return reject("corrupt", f"{type(exc).__name__}: {exc}")
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    row["phash"] = phash(upright)
    hit = evals.match_phash(row["phash"])
    if hit:
        return reject("eval_image_near", hit)
    if safety is not None:
        safety.add(row, upright)
    stored = _stored(data, upright, fmt, (width, height), longest if shrink else 0, cfg.jpeg_quality) \
        if shrink or orientation != 1 else data
    row.update(status="ok", bytes=stored, bytes_sha256=hashlib.sha256(stored).hexdigest())
    return row


def _stored(data: bytes, upright, fmt: str, size: tuple[int, int], longest: int, quality: int) -> bytes:
    """What the shards ship of an image shrunk to `longest` (0: not shrunk) or turned upright: the
    picture re-encoded in its own format."""
    from PIL import Image, ImageOps

    if longest:
        if fmt not in ("jpeg", "mpo"):
            upright = upright.copy()
        upright.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    elif fmt in ("jpeg", "mpo") and upright.size != size:
        # drafted for the hash only: decode again at full size to re-encode
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return _encode(upright, fmt, quality)
