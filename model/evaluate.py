"""Evaluation loss of a checkpoint on any shards, with the right images or with them shuffled.

    python -m model.evaluate --checkpoint RUN_DIR_OR_FILE --shards DIR [--shuffle-images] [--seed N] [--max-docs N]
                             [--holdout SHARE]

The loss is the mean cross-entropy per predicted text token (not <image>, <|endofchunk|>, BOS, EOS
or padding). `after_image_loss` counts only the text that follows an image in its document: the
text an image can inform. With --shuffle-images every document's images are replaced by images of
other documents of the same shards, drawn from the seed: the blind control. A model that reads its
images scores worse shuffled; one that ignores them scores the same.
Last line: eval_loss=… tokens=… docs=… after_image_loss=… after_image_tokens=…
"""
from __future__ import annotations

import argparse
import random

import pyarrow.parquet as pq
import torch

from model.checkpoint import load_checkpoint
from model.data import ShardStream, document_columns, on_side, shard_files
from model.flamingo import media_positions


def read_documents(files, max_docs: int | None = None, holdout: float = 0.0) -> list[dict]:
    """The shards' documents in file order (texts and image bytes), at most `max_docs`; with `holdout`,
    only the documents training kept out (`is_held_out`)."""
    docs = []
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(columns=document_columns(holdout)):
            docs.extend(on_side(batch.to_pylist(), holdout, held_out=True))
            if max_docs is not None and len(docs) >= max_docs:
                return docs[:max_docs]
    return docs


def shuffle_images(docs: list[dict], seed: int) -> list[dict]:
    """Each image slot takes an image drawn from another document (same count, same positions)."""
    pool = [(i, data) for i, doc in enumerate(docs) for data in doc["image_bytes"] if data is not None]
    owners = {i for i, _ in pool}
    if len(owners) < 2:
        raise ValueError(f"shuffling images needs at least two documents with images; {len(owners)} of "
                         f"{len(docs)} have any")
    rng = random.Random(seed)
    shuffled = []
    for i, doc in enumerate(docs):
        slots = []
        for data in doc["image_bytes"]:
            if data is not None:
                owner, data = rng.choice(pool)
                while owner == i:
                    owner, data = rng.choice(pool)
            slots.append(data)
        shuffled.append({"texts": doc["texts"], "image_bytes": slots})
    return shuffled


def text_token_mask(labels: torch.Tensor, model, tokenizer) -> torch.Tensor:
    special = torch.tensor([model.media_token_id, model.end_of_chunk_id, tokenizer.bos_token_id,
                            tokenizer.eos_token_id, tokenizer.pad_token_id], device=labels.device)
    return (labels != -100) & ~torch.isin(labels, special)


@torch.no_grad()
def loss_totals(model, batches, tokenizer, device, max_batches: int | None = None) -> dict:
    """Summed cross-entropy and token counts over `batches`, for all text tokens and for those after an
    image. Sums, not a mean of batch means, so the figure does not depend on how documents packed."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, tokens, loss after an image, tokens after an image
    docs = 0
    for i, batch in enumerate(batches):
        if max_batches is not None and i == max_batches:
            break
        ids = batch["input_ids"].to(device)
        logits = model(ids, batch["images"].to(device), batch["doc_ids"].to(device), batch["attention_mask"].to(device),
                       image_slots=batch["image_slots"].to(device))
        labels = batch["labels"].to(device)[:, 1:]
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.clamp(min=0).flatten(),
                                               reduction="none").view_as(labels)
        text = text_token_mask(labels, model, tokenizer)
        after = text & (media_positions(ids, batch["doc_ids"].to(device), model.media_token_id)[:, 1:] >= 0)
        sums += torch.stack([(ce * text).sum(), text.sum(), (ce * after).sum(), after.sum()]).double().cpu()
        docs += batch["n_docs"]
    model.train(was_training)
    loss, tokens, after_loss, after_tokens = sums.tolist()
    return {"eval_loss": round(loss / max(tokens, 1), 6), "tokens": int(tokens), "docs": docs,
            "after_image_loss": round(after_loss / max(after_tokens, 1), 6), "after_image_tokens": int(after_tokens)}


def evaluate_documents(model, tokenizer, transform, docs: list[dict], device="cpu", batch_size: int | None = None,
                       max_batches: int | None = None) -> dict:
    """`loss_totals` over `docs` (or their first `max_batches` batches), each read once in order, long
    ones windowed as in training."""
    cfg = model.cfg.replace(shuffle_buffer=1, batch_size=batch_size or model.cfg.batch_size)
    stream = ShardStream(None, tokenizer, transform, model.media_token_id, model.end_of_chunk_id, cfg, epochs=1,
                         documents=docs, keep_last=True)
    return loss_totals(model, stream, tokenizer, device, max_batches)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="model.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, or a run folder (its latest)")
    parser.add_argument("--shards", required=True)
    parser.add_argument("--shuffle-images", action="store_true", help="the blind control")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-docs", type=int)
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="score only the documents a run with this holdout kept out of training")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, transform, _ = load_checkpoint(args.checkpoint, device)
    docs = read_documents(shard_files(args.shards), args.max_docs, args.holdout)
    if not docs:
        raise SystemExit(f"no documents to evaluate in {args.shards}")
    if args.shuffle_images:
        try:
            docs = shuffle_images(docs, args.seed)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
    result = evaluate_documents(model, tokenizer, transform, docs, device, args.batch_size)
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
