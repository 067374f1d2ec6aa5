"""Few-shot completion with a trained checkpoint.

    python -m model.generate --checkpoint OUT/checkpoint-0000100.pt \\
        --prompt "<image>A photo of" --images a.jpg [--max-new-tokens 20]

Each <image> in the prompt takes the next file of --images; greedy decoding.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint


@torch.no_grad()
def complete(model, tokenizer, transform, prompt: str, images: list[bytes], max_new_tokens: int) -> str:
    pieces = prompt.split("<image>")
    ids = [tokenizer.bos_token_id] + tokenizer.encode(pieces[0])
    for piece in pieces[1:]:
        ids += [model.media_token_id] + tokenizer.encode(piece)
    if len(pieces) - 1 != len(images):
        raise SystemExit(f"the prompt has {len(pieces) - 1} <image> but {len(images)} images were given")
    pixels = torch.stack([transform(b) for b in images]).unsqueeze(0) if images else None
    model.eval()
    generated = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids + generated]), pixels)
        token = int(logits[0, -1].argmax())
        if token in (tokenizer.eos_token_id, model.end_of_chunk_id):
            break
        generated.append(token)
    return tokenizer.decode(generated)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="model.generate")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--max-new-tokens", type=int, default=20)
    args = parser.parse_args(argv)
    model, tokenizer, transform, _ = load_checkpoint(args.checkpoint)
    text = complete(model, tokenizer, transform, args.prompt, [Path(p).read_bytes() for p in args.images],
                    args.max_new_tokens)
    print(text)
    return text


if __name__ == "__main__":
    main()
