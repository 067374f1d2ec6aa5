"""The Arrow schemas of webweave's tables and a validator of the document invariants.

A document is three aligned lists: at every position exactly one of `texts[i]` / `images[i]` is set
(the OBELICS shape), and `image_meta[i]` is set exactly where the image is.
"""
from __future__ import annotations

import pyarrow as pa

from filters.text import METRICS

WARC_TYPE = pa.struct([
    ("filename", pa.string()),
    ("offset", pa.int64()),
    ("length", pa.int64()),
    ("record_id", pa.string()),
    ("date", pa.timestamp("us", tz="UTC")),
    ("crawl", pa.string()),
])

IMAGE_META_TYPE = pa.struct([
    ("alt", pa.string()),
    ("caption", pa.string()),
    ("width_attr", pa.int32()),
    ("height_attr", pa.int32()),
])

DOCS_SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("url", pa.string()),
    ("domain", pa.string()),
    ("title", pa.string()),
    ("warc", WARC_TYPE),
    ("texts", pa.list_(pa.string())),
    ("images", pa.list_(pa.string())),
    ("image_meta", pa.list_(IMAGE_META_TYPE)),
    # The page's own <meta name="robots"> content, lower-cased: the images stage honours noai/noimageai.
    ("meta_robots", pa.string()),
    ("charset", pa.string()),
])

# Added by the filter stage. Every document-level metric is kept, for passing documents too, so that
# thresholds can be re-tuned with a query instead of a re-run.
SCORES_TYPE = pa.struct([(m.name, pa.int32() if m.integer else pa.float32()) for m in METRICS]
                        + [("perplexity", pa.float32())])  # KenLM's, where filter.perplexity is on
# prose_scores: the same metrics over the prose paragraphs alone (not headings, list items, table rows);
# filter.prose_judge_words says when the document rules read them (filters.text.judged_scores).
FILTER_FIELDS = [("lang", pa.string()), ("lang_score", pa.float32()), ("scores", SCORES_TYPE),
                 ("prose_scores", SCORES_TYPE)]

# The images stage: one `_images` row per unique URL, and `image_info` aligned with each document's images.
IMAGES_SCHEMA = pa.schema([
    ("url", pa.string()),
    ("status", pa.string()),      # ok, refused, failed, rejected
    ("reason", pa.string()),      # null when ok
    ("error", pa.string()),       # the message behind the reason
    ("sha256", pa.string()),      # of the bytes as downloaded
    ("phash", pa.int64()),        # 64-bit DCT perceptual hash of the upright image
    ("width", pa.int32()),        # of the upright image as downloaded
    ("height", pa.int32()),
    ("format", pa.string()),      # Pillow's name, lower-cased
    ("bytes", pa.binary()),       # what the shards ship: the download, or its shrunk/upright re-encoding
    ("bytes_sha256", pa.string()),
    ("nsfw", pa.float32()),       # the safety model's unsafe probability (images.nsfw); null when not scored
])

IMAGE_INFO_TYPE = pa.struct([
    ("sha256", pa.string()),
    ("phash", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("format", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("bytes_sha256", pa.string()),
    ("num_bytes", pa.int64()),
    ("nsfw", pa.float32()),
])
IMAGES_FIELDS = [("image_info", pa.list_(IMAGE_INFO_TYPE))]

# The final shards: the bytes of each image at its position (null at text positions), and the
# released OBELICS layout for `--format obelics`.
SHARD_FIELDS = [("image_bytes", pa.list_(pa.binary()))]

OBELICS_SCHEMA = pa.schema([
    ("images", pa.list_(pa.string())),
    ("texts", pa.list_(pa.string())),
    ("metadata", pa.string()),
    ("general_metadata", pa.string()),
])

REJECTED_FIELDS = [("stage", pa.string()), ("reason", pa.string()),
                   ("detail", pa.string())]  # the error message behind the reason, where there was one


def with_fields(schema: pa.Schema, fields) -> pa.Schema:
    """`schema` with `fields` appended, replacing any of the same name (a stage run twice)."""
    names = {name for name, _ in fields}
    kept = [f for f in schema if f.name not in names]
    return pa.schema(kept + [pa.field(name, type_) for name, type_ in fields], metadata=schema.metadata)


def with_rejected_fields(schema: pa.Schema) -> pa.Schema:
    """The `_rejected/` schema of a stage: its output columns plus why the row was dropped."""
    return with_fields(schema, REJECTED_FIELDS)


REJECTED_SCHEMA = with_rejected_fields(DOCS_SCHEMA)


def document_problems(doc: dict) -> list[str]:
    """Every way `doc` breaks the document invariants; empty when it is valid."""
    texts, images, meta = doc.get("texts"), doc.get("images"), doc.get("image_meta")
    if texts is None or images is None or meta is None:
        return ["texts, images and image_meta must all be lists"]
    if not (len(texts) == len(images) == len(meta)):
        return [f"lengths differ: texts {len(texts)}, images {len(images)}, image_meta {len(meta)}"]
    problems = []
    for i, (text, image, m) in enumerate(zip(texts, images, meta)):
        if (text is None) == (image is None):
            problems.append(f"position {i}: exactly one of text and image must be set")
        elif text is not None:
            if not text.strip():
                problems.append(f"position {i}: empty text")
            elif i > 0 and texts[i - 1] is not None:
                problems.append(f"position {i}: two adjacent texts")
            if m is not None:
                problems.append(f"position {i}: image_meta set at a text position")
        elif m is None:
            problems.append(f"position {i}: image without image_meta")
    return problems


def split_paragraphs(text: str) -> list[str]:
    """A text's paragraphs: the pieces between blank lines."""
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def aligned_lists(items) -> tuple[list, list, list]:
    """texts, images, image_meta from (text, image, meta) items in document order, merging texts that
    became adjacent (once an image between them was removed) with a blank line."""
    texts, images, meta = [], [], []
    for text, image, m in items:
        if text is not None:
            if texts and texts[-1] is not None:
                texts[-1] = f"{texts[-1]}\n\n{text}"
                continue
            texts.append(text)
            images.append(None)
            meta.append(None)
        else:
            texts.append(None)
            images.append(image)
            meta.append(m)
    return texts, images, meta
