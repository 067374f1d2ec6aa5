"""Trainer throughput: training steps of the SmolLM2-135M + MobileNetV2 Flamingo (tokens/s, images/s),
the data loader alone (samples/s), and their ratio (the loader must keep ≥ 10× ahead); on a GPU also
model FLOPs utilisation.

    python -m bench.train [--config smol] [--steps 4] [--random-weights] [--workers N] [--compile] [--batch-size B]

Without the offline weights (make weights) it falls back to the tiny config and says so.
--random-weights builds the same architectures with random weights (shapes are what throughput
depends on), for machines the weights cannot reach. Last line:
train_tokens_per_s=… train_images_per_s=… loader_samples_per_s=… loader_ratio=… [mfu=…]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from model.config import CONFIGS
from model.data import ShardStream
from model.encoders import mobilenet_v2_weights, smollm2_path
from model.flamingo import Flamingo

BUILD = Path(__file__).resolve().parent.parent / "build" / "bench"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def random_smol():
    """SmolLM2-135M's and MobileNetV2's shapes with random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from model.encoders import ByteTokenizer, ImageTransform, MobileNetV2

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    tokenizer = ByteTokenizer()
    tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id = 1, 2, 2
    return LlamaForCausalLM(config), tokenizer, MobileNetV2(), ImageTransform(224)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.train")
    parser.add_argument("--config", default="smol", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--shards", help="shard folder to read instead of building sample shards")
    parser.add_argument("--workers", type=int, default=0, help="data-loader worker processes (train's num_workers)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first (train's compile=true)")
    args = parser.parse_args()
    name = args.config
    if name == "smol" and not args.random_weights and (smollm2_path() is None or mobilenet_v2_weights() is None):
        print("offline weights not installed (make weights): falling back to --config tiny")
        name = "tiny"
    cfg = CONFIGS[name]
    if args.batch_size:
        cfg = cfg.replace(batch_size=args.batch_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    if args.shards:
        shards = sorted(Path(args.shards).glob("*.parquet"))
    else:
        from demo.samples import build_sample_shards

        shards = build_sample_shards(BUILD / "shards", 400)
    if args.random_weights and name == "smol":
        lm, tokenizer, vision, transform = random_smol()
        torch.manual_seed(0)
        model = Flamingo(lm, vision, cfg)
    else:
        from model.checkpoint import build_model

        model, tokenizer, transform = build_model(cfg)
    model.to(device).train()
    if args.compile:
        model.compile()

    stream = ShardStream(shards, tokenizer, transform, model.media_token_id, model.end_of_chunk_id, cfg)
    # The loader as training runs it: a DataLoader with `--workers` processes, pinned memory on a GPU.
    loader = DataLoader(stream, batch_size=None, num_workers=args.workers, pin_memory=device.type == "cuda")
    batches = iter(loader)
    next(batches)  # start-up: worker processes, the first row groups
    start, measured = time.perf_counter(), max(args.steps + 4, 2 * args.workers)
    for _ in range(measured):
        next(batches)
    loader_rate = measured * cfg.batch_size / (time.perf_counter() - start)

    from model.train import optimizer_for

    optimizer = optimizer_for(model, cfg)
    batch = next(batches)
    inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    times = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            logits = model(inputs["input_ids"], inputs["images"], inputs["doc_ids"], inputs["attention_mask"],
                           image_slots=inputs["image_slots"])
            _, loss = model.loss(logits, inputs["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    tokens, images = batch["n_tokens"], batch["n_images"]
    train_samples = cfg.batch_size / step_s
    print(f"config {name} on {device} ({torch.get_num_threads()} threads): {cfg.batch_size} sequences × "
          f"{cfg.max_tokens} tokens, {images} images per step; median of {len(times)} steps: {step_s:.2f} s/step")
    print(f"training: {tokens / step_s:,.0f} tokens/s, {images / step_s:,.1f} images/s, {train_samples:.2f} samples/s")
    print(f"loader alone: {loader_rate:,.1f} samples/s = {loader_rate / train_samples:.1f}x what training consumes "
          f"(must be ≥ 10x)")
    line = (f"train_tokens_per_s={tokens / step_s:.1f} train_images_per_s={images / step_s:.2f} "
            f"loader_samples_per_s={loader_rate:.1f} loader_ratio={loader_rate / train_samples:.1f}")
    if device.type == "cuda":
        frozen_lm = sum(p.numel() for p in model.lm.parameters() if not p.requires_grad)
        trainable = sum(p.numel() for p in model.trainable_parameters())
        # frozen LM: forward 2N and backward (activations only) 2N per token; trainable parts 6N; MobileNetV2
        # forward ≈ 0.6 GFLOPs per 224² image, counting the batch's real images (no padding is encoded).
        flops = (4 * frozen_lm + 6 * trainable) * cfg.batch_size * cfg.max_tokens + 0.6e9 * images
        name_gpu = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name_gpu), None)
        if peak:
            mfu = flops / step_s / peak
            print(f"{name_gpu}: ≈ {flops / step_s / 1e12:.1f} TFLOP/s of model FLOPs = {mfu:.2%} MFU (bf16 dense peak "
                  f"{peak / 1e12:.0f} TFLOP/s)")
            line += f" mfu={mfu:.4f}"
    print(line)


if __name__ == "__main__":
    main()
