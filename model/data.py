"""Streaming training data from final shards (parquet with texts, images, image_bytes aligned).

Each worker (and each DDP rank) reads its own share of (file, row group) units in a seeded order,
shuffles documents in a bounded buffer, turns them into token sequences and packs them into
batches. The stream is a pure function of (seed, epoch, worker), so a position is just the number of
batches a worker has yielded: a resumed run regenerates the stream and skips that many, decoding no
image until a batch is really emitted.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info


@dataclass
class Segment:
    tokens: list[int]
    images: list[bytes]


def shard_files(folder: str | Path) -> list[Path]:
    """The training shards under `folder`: parquet files with image bytes (an OBELICS-layout export
    beside them holds URLs only and is not one)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*.parquet")
                   if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
                   and "image_bytes" in pq.read_schema(p).names)
    if not files:
        raise SystemExit(f"no shard files (parquet with an image_bytes column) under {folder}")
    return files


def is_held_out(doc_id: str, share: float) -> bool:
    """Whether a document belongs to the evaluation share: a hash of its id, so the split is the same
    in every run, every worker and every resume."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2 ** 64


def document_columns(holdout: float) -> list[str]:
    """The shard columns a reader needs: the document, and its id when a held-out share is split off."""
    return ["texts", "image_bytes"] + (["doc_id"] if holdout else [])


def on_side(rows, holdout: float, held_out: bool):
    """The rows on one side of the held-out split (all of them when no share is held out)."""
    return (row for row in rows if not holdout or is_held_out(row["doc_id"], holdout) == held_out)


def shard_units(paths: list[Path]) -> list[tuple[str, int]]:
    return [(str(p), rg) for p in sorted(paths) for rg in range(pq.ParquetFile(p).num_row_groups)]


def document_tokens(doc: dict, tokenizer, media_id: int, end_of_chunk_id: int) -> Segment:
    """<image> at each image position, <|endofchunk|> closing each image's following text."""
    tokens, images, open_chunk = [tokenizer.bos_token_id], [], False
    for text, data in zip(doc["texts"], doc["image_bytes"]):
        if data is not None:
            if open_chunk:
                tokens.append(end_of_chunk_id)
            tokens.append(media_id)
            images.append(data)
            open_chunk = True
        elif text:
            tokens.extend(tokenizer.encode(text if len(tokens) == 1 else " " + text))
    if open_chunk:
        tokens.append(end_of_chunk_id)
    tokens.append(tokenizer.eos_token_id)
    return Segment(tokens, images)


def window(segment: Segment, max_tokens: int, max_images: int, media_id: int, rng: random.Random) -> Segment | None:
    """At most `max_tokens` tokens and `max_images` images of a document. A long document gets one window,
    its start drawn uniformly among the starts whose window holds an image with text after it: with a
    web page of thousands of tokens, a start drawn from all positions mostly lands where no image is,
    and such a window teaches nothing about images. A window whose only image is its last token is
    dropped."""
    tokens = segment.tokens
    media_at = [i for i, t in enumerate(tokens) if t == media_id]
    start = 0
    if len(tokens) > max_tokens and media_at:
        start = _start_around_images(media_at, max_tokens, len(tokens) - max_tokens, rng)
        if start is None:
            return None
    end = min(len(tokens), start + max_tokens)
    inside = [p for p in media_at if start <= p < end]
    if len(inside) > max_images:
        end = inside[max_images]  # stop before the first image too many
        inside = inside[:max_images]
    if not inside or (len(inside) == 1 and inside[0] == end - 1):
        return None
    first = media_at.index(inside[0])
    return Segment(tokens[start:end], segment.images[first: first + len(inside)])


def _start_around_images(media_at: list[int], max_tokens: int, last_start: int, rng: random.Random) -> int | None:
    """A window start drawn uniformly from the union of each image's ranges of starts (the window holds
    the image and a token after it), walked as merged intervals instead of listed position by position."""
    intervals: list[list[int]] = []
    for p in media_at:  # ascending, so the ranges come sorted by their start
        lo, hi = max(0, p - max_tokens + 2), min(p, last_start)
        if lo > hi:
            continue
        if intervals and lo <= intervals[-1][1] + 1:
            intervals[-1][1] = max(intervals[-1][1], hi)
        else:
            intervals.append([lo, hi])
    total = sum(hi - lo + 1 for lo, hi in intervals)
    if not total:
        return None
    k = rng.randrange(total)  # the draw rng.choice makes over the listed starts
    for lo, hi in intervals:
        if k <= hi - lo:
            return lo + k
        k -= hi - lo + 1


class ShardStream(IterableDataset):
    """Batches of packed sequences: input_ids, labels, attention_mask, doc_ids (B, T); the batch's images
    (N, 3, H, W), decoded only when collated, and image_slots (N,), each image's place b·max_images + k.
    `documents` (dicts with texts and image_bytes) replaces the shards as the source: evaluation reads
    documents it has altered, and with `keep_last` gets the last, partial batch too."""

    def __init__(self, paths, tokenizer, transform, media_id: int, end_of_chunk_id: int, cfg,
                 rank: int = 0, world: int = 1, skip_batches: int = 0, epochs: int | None = None,
                 documents: list[dict] | None = None, keep_last: bool = False):
        self.documents, self.keep_last = documents, keep_last
        self.units = [("documents", 0)] if documents is not None else shard_units([Path(p) for p in paths])
        if not self.units:
            raise ValueError("no shard files with rows")
        self.tokenizer, self.transform, self.cfg = tokenizer, transform, cfg
        self.media_id, self.end_of_chunk_id = media_id, end_of_chunk_id
        self.rank, self.world, self.skip_batches, self.epochs = rank, world, skip_batches, epochs

    def _documents(self, worker: int, workers: int):
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            order = random.Random(self.cfg.seed * 1000 + epoch).sample(self.units, len(self.units))
            mine = order[worker::workers] or order[worker % len(order):][:1]
            for path, group in mine:
                if self.documents is not None:
                    yield from self.documents
                    continue
                holdout = self.cfg.holdout
                rows = pq.ParquetFile(path).read_row_group(group, columns=document_columns(holdout)).to_pylist()
                yield from on_side(rows, holdout, held_out=False)
            epoch += 1

    def _segments(self, worker: int, workers: int):
        rng = random.Random(self.cfg.seed * 7919 + worker)
        buffer = []
        for doc in self._documents(worker, workers):
            buffer.append(doc)
            if len(buffer) < self.cfg.shuffle_buffer:
                continue
            yield from self._segment(buffer.pop(rng.randrange(len(buffer))), rng)
        while buffer:  # a finite stream (evaluation) ends with what the buffer still holds
            yield from self._segment(buffer.pop(rng.randrange(len(buffer))), rng)

    def _segment(self, doc: dict, rng: random.Random):
        seg = window(document_tokens(doc, self.tokenizer, self.media_id, self.end_of_chunk_id),
                     self.cfg.max_tokens, self.cfg.max_images, self.media_id, rng)
        if seg is not None:
            yield seg

    def _rows(self, worker: int, workers: int):
        """Greedy packing: whole documents join a row while tokens and images fit."""
        row: list[Segment] = []
        for seg in self._segments(worker, workers):
            used = sum(len(s.tokens) for s in row)
            images = sum(len(s.images) for s in row)
            if row and (used + len(seg.tokens) > self.cfg.max_tokens or images + len(seg.images) > self.cfg.max_images):
                yield row
                row = []
            row.append(seg)
        if row:
            yield row

    def __iter__(self):
        info = get_worker_info()
        local, local_workers = (info.id, info.num_workers) if info else (0, 1)
        worker, workers = self.rank * local_workers + local, self.world * local_workers
        # DataLoader hands out batches from its workers in turn, so each skips its share.
        skip = (self.skip_batches - local + local_workers - 1) // local_workers if self.skip_batches > local else 0
        batch = []
        for row in self._rows(worker, workers):
            batch.append(row)
            if len(batch) == self.cfg.batch_size:
                if skip:
                    skip -= 1
                else:
                    yield self.collate(batch)
                batch = []
        if batch and self.keep_last:  # evaluation scores every document, training only full batches
            yield self.collate(batch)

    def collate(self, rows: list[list[Segment]]) -> dict:
        cfg, pad = self.cfg, self.tokenizer.pad_token_id
        b, t = len(rows), cfg.max_tokens
        input_ids = torch.full((b, t), pad, dtype=torch.long)
        doc_ids = torch.zeros((b, t), dtype=torch.long)
        attention = torch.zeros((b, t), dtype=torch.long)
        pixels, slots = [], []
        for i, row in enumerate(rows):
            at, k = 0, 0
            for d, seg in enumerate(row):
                n = len(seg.tokens)
                input_ids[i, at: at + n] = torch.tensor(seg.tokens)
                doc_ids[i, at: at + n] = d
                attention[i, at: at + n] = 1
                for data in seg.images:
                    pixels.append(self.transform(data))
                    slots.append(i * cfg.max_images + k)
                    k += 1
                at += n
            doc_ids[i, at:] = len(row)
        labels = input_ids.clone()
        labels[(attention == 0) | (input_ids == self.media_id)] = -100
        size = self.transform.size
        images = torch.stack(pixels) if pixels else torch.zeros((0, 3, size, size))
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention, "doc_ids": doc_ids,
                "images": images, "image_slots": torch.tensor(slots, dtype=torch.long), "n_images": len(pixels),
                "n_tokens": int(attention.sum()), "n_docs": sum(len(row) for row in rows)}
