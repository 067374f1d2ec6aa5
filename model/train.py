"""Train a Flamingo on final shards: one readable loop.

    python -m model.train --shards DIR --out DIR --config tiny --steps N [--resume] [--eval-shards DIR]
    torchrun --nproc_per_node 8 -m model.train --shards … --config smol …   (DDP)

Writes metrics.jsonl (one object per optimizer step: step, loss, lr, tokens, images, seconds; eval_loss
every eval_every steps) and checkpoints (trainable weights, optimizer, scheduler, step, RNG) to --out.
--resume continues from the latest checkpoint up to step N and logs the losses an uninterrupted run
would have logged: the data stream skips exactly the batches already consumed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.config import CONFIGS, TrainConfig
from model.data import ShardStream
from model.encoders import load_lm, load_vision
from model.flamingo import Flamingo


def build_model(cfg: TrainConfig):
    lm, tokenizer = load_lm(cfg.lm)
    vision, transform = load_vision(cfg.vision)
    torch.manual_seed(cfg.seed)
    return Flamingo(lm, vision, cfg), tokenizer, transform


def shard_files(folder: str) -> list[Path]:
    """The training shards under `folder`: parquet files with image bytes (an OBELICS-layout export
    beside them holds URLs only and is not one)."""
    import pyarrow.parquet as pq

    root = Path(folder)
    files = sorted(p for p in root.rglob("*.parquet")
                   if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
                   and "image_bytes" in pq.read_schema(p).names)
    if not files:
        raise SystemExit(f"no shard files (parquet with an image_bytes column) under {folder}")
    return files


def optimizer_for(model: Flamingo, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on the resampler's latents, norms, gates and biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "latents" in name or "time_embedding" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.999))


def lr_factor(step: int, cfg: TrainConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


def trainable_state(model: Flamingo) -> dict:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted(out.glob("checkpoint-*.pt"))
    return found[-1] if found else None


def save_checkpoint(out: Path, model, optimizer, step: int, cfg: TrainConfig) -> Path:
    path = out / f"checkpoint-{step:07d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save({"model": trainable_state(model), "optimizer": optimizer.state_dict(), "step": step,
                "config": cfg.__dict__, "rng": torch.get_rng_state()}, tmp)
    tmp.rename(path)
    return path


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="model.train", description=__doc__.split("\n")[0])
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval-shards", help="held-out shards; eval loss every eval_every steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    args = parser.parse_args(argv)

    cfg = CONFIGS[args.config]
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(cfg, key))
        cfg = cfg.replace(**{key: (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)})

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, tokenizer, transform = build_model(cfg)
    model.set_activation_checkpointing(cfg.activation_checkpointing)
    model.to(device)
    optimizer = optimizer_for(model, cfg)
    step = 0
    checkpoint = latest_checkpoint(out) if args.resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        torch.set_rng_state(state["rng"])
    elif args.resume:
        print(f"no checkpoint in {out}; starting from step 0", file=sys.stderr)
    if not args.resume:
        (out / "metrics.jsonl").write_text("")
    trainer = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if distributed else model

    stream = ShardStream(shard_files(args.shards), tokenizer, transform, model.media_token_id, model.end_of_chunk_id,
                         cfg, rank, world, skip_batches=step * cfg.grad_accum)
    batches = iter(DataLoader(stream, batch_size=None, num_workers=cfg.num_workers))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())
    log = open(out / "metrics.jsonl", "a") if rank == 0 else None
    records = []
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="train", disable=rank != 0, unit="step")
    while step < args.steps:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg, args.steps)
        total_loss, tokens, images = 0.0, 0, 0
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            attend_next = torch.rand(batch["input_ids"].shape[0]) < cfg.p_next if cfg.p_next else None
            sync = contextlib.nullcontext() if not distributed or micro == cfg.grad_accum - 1 else trainer.no_sync()
            with sync, autocast:
                logits = trainer(batch["input_ids"].to(device), batch["images"].to(device), batch["doc_ids"].to(device),
                                 batch["attention_mask"].to(device), attend_next)
                ce, loss = model.loss(logits, batch["labels"].to(device))
            (loss / cfg.grad_accum).backward()
            total_loss += ce.item() / cfg.grad_accum
            tokens += batch["n_tokens"]
            images += batch["n_images"]
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, "loss": round(total_loss, 6), "lr": optimizer.param_groups[0]["lr"], "tokens": tokens,
                  "images": images, "seconds": round(time.perf_counter() - started, 4)}
        if args.eval_shards and cfg.eval_every and step % cfg.eval_every == 0:
            record["eval_loss"] = evaluate(model, args.eval_shards, tokenizer, transform, cfg, device)
        records.append(record)
        if log:
            log.write(json.dumps(record) + "\n")
            log.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss:.3f}")
        if rank == 0 and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < args.steps:
            save_checkpoint(out, model, optimizer, step, cfg)
    bar.close()
    if rank == 0:
        save_checkpoint(out, model, optimizer, step, cfg)
        log.close()
    if distributed:
        torch.distributed.destroy_process_group()
    return records


@torch.no_grad()
def evaluate(model: Flamingo, shards: str, tokenizer, transform, cfg: TrainConfig, device) -> float:
    model.eval()
    stream = ShardStream(shard_files(shards), tokenizer, transform, model.media_token_id, model.end_of_chunk_id,
                         cfg.replace(shuffle_buffer=1), epochs=1)
    losses = []
    for i, batch in enumerate(stream):
        if i == cfg.eval_batches:
            break
        logits = model(batch["input_ids"].to(device), batch["images"].to(device), batch["doc_ids"].to(device),
                       batch["attention_mask"].to(device))
        losses.append(model.loss(logits, batch["labels"].to(device))[0].item())
    model.train()
    return round(sum(losses) / max(len(losses), 1), 6)


if __name__ == "__main__":
    main()
