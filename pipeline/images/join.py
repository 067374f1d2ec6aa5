"""The images stage's row functions: every image URL through download and inspection into one row of
the `_images` table, and the join of those rows back into documents. The parts live beside it:
pipeline/images/guard.py (consent, private network, robots.txt), pipeline/images/download.py
(img2dataset) and pipeline/images/checks.py (decode, filter, hash).

Every image URL ends in one row of the `_images` table: status "ok" with its bytes, or "refused"
(consent, private network), "failed" (download) or "rejected" (decoding and image filters), with the
counted `reason` and the message behind it in `error`. An "ok" row carries the safety model's score
(`nsfw`, pipeline/images/safety.py); the join applies the rule that reads it.
"""
from __future__ import annotations

from pipeline.config import ImagesConfig
from pipeline.images.checks import EvalImages, inspect_image
from pipeline.images.download import REFUSALS, Fetcher, download_reason
from pipeline.images.guard import page_refuses
from pipeline.images.safety import SafetyQueue, is_unsafe
from pipeline.schema import IMAGE_INFO_TYPE, IMAGES_SCHEMA, aligned_lists
from pipeline.stats import UnitStats

INFO_FIELDS = [field.name for field in IMAGE_INFO_TYPE]


def fetch_and_inspect(urls: list[str], cfg: ImagesConfig, evals: EvalImages, progress=None,
                      fetcher: Fetcher | None = None, safety: SafetyQueue | None = None) -> list[dict]:
    """`_images` rows for `urls`, in their order, kept images scored by `safety` when given. A unit
    passes its own `fetcher` and `safety` queue to every batch."""
    fetched = (fetcher or Fetcher(cfg)).download(urls)
    rows = []
    for url in urls:
        data, error = fetched.get(url, (None, "missing from the downloader's output"))
        if data is None:
            reason = download_reason(error)
            status = "refused" if reason in REFUSALS else "failed"
            rows.append({**_empty_row(), "url": url, "status": status, "reason": reason, "error": error})
        else:
            row = inspect_image(data, cfg, evals, safety)  # the same dict `safety` fills in at its flush
            row["url"] = url
            rows.append(row)
        if progress is not None:
            progress()
    if safety is not None:
        safety.flush()
    return rows


def _empty_row() -> dict:
    return {name: None for name in IMAGES_SCHEMA.names}


# ---------------------------------------------------------------- join back into documents

def join_images(row: dict, info: dict[str, dict], cfg: ImagesConfig, stats: UnitStats):
    """Remove the image positions that did not end "ok" (counted as image_<reason>), merge the texts
    that became adjacent, align `image_info`, and reject documents with an unsafe image (OBELICS's
    rule; with images.nsfw.action drop_image only the image goes) or with too few or too many images.
    Returns the row, its drop reason (None when kept) and the detail behind it (the unsafe image's sha256)."""
    refused_page = page_refuses(row.get("meta_robots"), cfg)
    items, infos, seen, unsafe = [], [], set(), None
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
        elif is_unsafe(image.get("nsfw"), cfg.nsfw):
            unsafe = unsafe or image["sha256"]
            reason = "nsfw" if cfg.nsfw.action == "drop_image" else None
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
    if unsafe is not None and cfg.nsfw.action == "drop_document":
        return out, "image_nsfw", unsafe
    if n < cfg.min_images:
        return out, "too_few_images", None
    if n > cfg.max_images:
        return out, "too_many_images", None
    if all(t is None for t in texts):
        return out, "no_text", None
    stats.tally["images_out"] += n
    return out, None, None
