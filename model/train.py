"""Train a Flamingo on final shards: one readable loop.

    python -m model.train --shards DIR --out DIR --config tiny --steps N [--resume] [--eval-shards DIR]
    torchrun --nproc_per_node 8 -m model.train --shards … --config smol …   (DDP)

Writes metrics.jsonl (one object per optimizer step: step, loss, lr, tokens, images, seconds, gradient
norms, the cross-attention gates and output RMS, whether the spike guard skipped the update; eval_loss
every eval_every steps), checkpoints (trainable weights, optimizer, step, RNG, spike guard) and, with
--eval-shards or a `holdout` share, eval.json (held-out loss with the right and with shuffled images)
to --out.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.checkpoint import build_model, latest_checkpoint, save_checkpoint
from model.config import CONFIGS, TrainConfig
from model.data import ShardStream, shard_files
from model.evaluate import evaluate_documents, read_documents, shuffle_images
from model.flamingo import Flamingo
from pipeline.typed_yaml import with_overrides

EVAL_DOCS = 1000  # evaluation documents are held in memory, image bytes included


def optimizer_for(model: Flamingo, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused on a GPU (one kernel for all parameters); no weight decay on the resampler's latents,
    norms, gates and biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "latents" in name else decay).append(p)
    fused = True if all(p.is_cuda for p in decay + no_decay) else None
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.999), fused=fused)


def lr_factor(step: int, cfg: TrainConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


@dataclass
class SpikeGuard:
    """Skips an update whose loss exceeds `factor` × the running mean of the applied ones: one bad batch
    must not wreck a run (IDEFICS reports losing runs to loss spikes). The mean judges from the
    `warmup`-th applied step on. After `patience` skips in a row the loss is taken as the new level,
    so a run whose loss really moved is not frozen; a non-finite loss is never applied."""
    factor: float
    warmup: int = 10
    patience: int = 10
    mean: float = 0.0
    applied: int = 0
    in_a_row: int = 0
    skipped: int = 0

    def is_spike(self, loss: float) -> bool:
        finite = math.isfinite(loss)
        judged = self.factor > 0 and self.applied >= self.warmup
        if not finite or (judged and loss > self.factor * self.mean and self.in_a_row < self.patience):
            self.in_a_row += 1
            self.skipped += 1
            return True
        self.mean = loss if self.applied == 0 or self.in_a_row >= self.patience else 0.9 * self.mean + 0.1 * loss
        self.applied += 1
        self.in_a_row = 0
        return False


HEALTH = ("attn_gate", "ff_gate", "xattn_rms", "xattn_grad_norm")


def health(model: Flamingo) -> torch.Tensor:
    """Per cross-attention block: tanh of its two gates, the RMS of what it added to tokens with an
    image, the norm of its gradients; then the resampler's gradient norm. On the device, flat."""
    def grad_norm(module):
        grads = [p.grad.float().norm() for p in module.parameters() if p.grad is not None]
        return torch.stack(grads).norm() if grads else torch.zeros((), device=model.embedding.added.weight.device)

    rows = [torch.stack([block.attention_gate.detach().float().tanh()[0], block.feed_forward_gate.detach().float().tanh()[0],
                         block.update_rms.to(block.attention_gate.device), grad_norm(block)]) for block in model.blocks]
    return torch.cat([torch.stack(rows).flatten(), grad_norm(model.resampler).view(1)])


def health_record(values: list[float]) -> dict:
    blocks = [values[i: i + len(HEALTH)] for i in range(0, len(values) - 1, len(HEALTH))]
    record = {name: [round(b[k], 6) for b in blocks] for k, name in enumerate(HEALTH)}
    record["resampler_grad_norm"] = round(values[-1], 6)
    return record


def on_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(prog="model.train", description=__doc__.split("\n")[0])
    parser.add_argument("--shards", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval-shards", help="held-out shards (else the `holdout` share of --shards): eval loss "
                        "every eval_every steps, and at the end the loss with the right and with shuffled images "
                        "(eval.json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field (the pipeline's grammar: values read as YAML)")
    args = parser.parse_args(argv)
    try:
        return args, with_overrides(CONFIGS[args.config], args.set, "train")
    except ValueError as exc:
        parser.error(str(exc))


@dataclass
class Placement:
    """Where this process trains: its rank among `world` processes and its device."""
    distributed: bool
    rank: int
    world: int
    device: torch.device

    @classmethod
    def from_environment(cls) -> "Placement":
        """torchrun's variables when it started us; one process on the GPU (or the CPU) otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
        return cls(world > 1, int(os.environ.get("RANK", "0")), world, device)


def restore(out: Path, model: Flamingo, optimizer, cfg: TrainConfig, resume: bool, device) -> tuple[int, SpikeGuard]:
    """The step to start from and the spike guard: a fresh run's, or the latest checkpoint's state
    (weights, optimizer, RNG) when resuming."""
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is None:
        if resume:
            print(f"no checkpoint in {out}; starting from step 0", file=sys.stderr)
        else:
            (out / "metrics.jsonl").write_text("")
        return 0, SpikeGuard(cfg.spike_factor)
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return state["step"], SpikeGuard(**state.get("spike_guard", {"factor": cfg.spike_factor}))


def train_step(trainer, model: Flamingo, optimizer, batches, cfg: TrainConfig, guard: SpikeGuard,
               where: Placement, lr: float) -> dict:
    """One optimizer step over `grad_accum` batches; its metrics.jsonl record (without the step number)."""
    started, device = time.perf_counter(), where.device
    for group in optimizer.param_groups:
        group["lr"] = lr
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    total_loss, tokens, images = torch.zeros((), device=device), 0, 0
    for micro in range(cfg.grad_accum):
        batch = on_device(next(batches), device)
        attend_next = (torch.rand(batch["input_ids"].shape[0]) < cfg.p_next).to(device) if cfg.p_next else None
        last = micro == cfg.grad_accum - 1
        sync = trainer.no_sync() if where.distributed and not last else contextlib.nullcontext()
        with sync, autocast:
            logits = trainer(batch["input_ids"], batch["images"], batch["doc_ids"], batch["attention_mask"],
                             attend_next, image_slots=batch["image_slots"])
            ce, loss = model.loss(logits, batch["labels"])
        (loss / cfg.grad_accum).backward()
        total_loss += ce.detach() / cfg.grad_accum
        tokens += batch["n_tokens"]
        images += batch["n_images"]
    vitals = health(model)  # before clipping: the gradients as the data gave them
    grad_norm = torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), cfg.clip)
    # the step's one device→host copy: the spike guard must see the loss before the update
    loss_value, grad_value, *values = torch.cat([total_loss.view(1), grad_norm.float().view(1), vitals]).tolist()
    skipped = guard.is_spike(loss_value)
    if not skipped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": round(loss_value, 6), "lr": lr, "tokens": tokens, "images": images,
            "seconds": round(time.perf_counter() - started, 4), "grad_norm": round(grad_value, 6),
            **health_record(values), "skipped": skipped, "spikes": guard.skipped}


def main(argv: list[str] | None = None) -> list[dict]:
    args, cfg = parse_args(argv)
    where = Placement.from_environment()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model, tokenizer, transform = build_model(cfg)
    model.set_activation_checkpointing(cfg.activation_checkpointing)
    model.to(where.device)
    if cfg.compile:
        model.compile()  # in place: parameters, state_dict and attributes stay the model's own
    optimizer = optimizer_for(model, cfg)
    step, guard = restore(out, model, optimizer, cfg, args.resume, where.device)
    trainer = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) \
        if where.distributed else model
    eval_docs = evaluation_documents(args.eval_shards, args.shards, cfg)
    if (args.eval_shards or cfg.holdout) and not eval_docs:
        raise SystemExit("nothing to evaluate on: the evaluation shards or the held-out share hold no document")
    stream = ShardStream(shard_files(args.shards), tokenizer, transform, model.media_token_id, model.end_of_chunk_id,
                         cfg, where.rank, where.world, skip_batches=step * cfg.grad_accum)
    batches = iter(DataLoader(stream, batch_size=None, num_workers=cfg.num_workers,
                              pin_memory=where.device.type == "cuda"))
    chief = where.rank == 0
    log = open(out / "metrics.jsonl", "a") if chief else None
    records = []
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="train", disable=not chief, unit="step")
    while step < args.steps:
        record = {"step": step + 1, **train_step(trainer, model, optimizer, batches, cfg, guard, where,
                                                 cfg.lr * lr_factor(step, cfg, args.steps))}
        step += 1
        if eval_docs and cfg.eval_every and step % cfg.eval_every == 0:
            record["eval_loss"] = evaluate_documents(model, tokenizer, transform, eval_docs, where.device,
                                                     max_batches=cfg.eval_batches)["eval_loss"]
        records.append(record)
        if log:
            log.write(json.dumps(record) + "\n")
            log.flush()
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if record["skipped"]:
            print(f"step {step}: loss {record['loss']:.4f} above {cfg.spike_factor} × running mean {guard.mean:.4f}; "
                  f"update skipped ({guard.skipped} so far)", file=sys.stderr)
        if chief and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < args.steps:
            save_checkpoint(out, model, optimizer, step, cfg, {"spike_guard": asdict(guard)})
    bar.close()
    if chief:
        save_checkpoint(out, model, optimizer, step, cfg, {"spike_guard": asdict(guard)})
        log.close()
        if eval_docs:
            held_out_eval(out, model, eval_docs, tokenizer, transform, where.device, cfg.seed, step)
    if where.distributed:
        torch.distributed.destroy_process_group()
    return records


def evaluation_documents(eval_shards: str | None, shards: str, cfg: TrainConfig) -> list[dict]:
    """The documents to evaluate on: the held-out shards, else the share of `shards` training keeps out."""
    if eval_shards:
        return read_documents(shard_files(eval_shards), EVAL_DOCS)
    return read_documents(shard_files(shards), EVAL_DOCS, cfg.holdout) if cfg.holdout else []


def held_out_eval(out: Path, model: Flamingo, docs: list[dict], tokenizer, transform, device, seed: int,
                  step: int) -> dict:
    """The held-out loss with each document's own images and with images shuffled among documents,
    printed and written to eval.json."""
    result = {"step": step, "right": evaluate_documents(model, tokenizer, transform, docs, device)}
    try:
        result["shuffled"] = evaluate_documents(model, tokenizer, transform, shuffle_images(docs, seed), device)
    except ValueError as exc:  # a small held-out share: the control is skipped, the run's work is kept
        result["shuffled"], result["shuffled_skipped"] = None, str(exc)
        print(f"eval, shuffled images: skipped, {exc}")
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    for name in ("right", "shuffled"):
        if result[name]:
            print(f"eval, {name} images: ".ljust(24) + " ".join(f"{k}={v}" for k, v in result[name].items()))
    return result


if __name__ == "__main__":
    main()
