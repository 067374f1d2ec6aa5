"""A model from its settings, and checkpoints: what trains, the optimizer, the step and the RNG.
Shared by training, evaluation and generation."""
from __future__ import annotations

from pathlib import Path

import torch

from model.config import TrainConfig
from model.encoders import load_lm, load_vision
from model.flamingo import Flamingo


def build_model(cfg: TrainConfig):
    lm, tokenizer = load_lm(cfg.lm)
    vision, transform = load_vision(cfg.vision)
    torch.manual_seed(cfg.seed)
    return Flamingo(lm, vision, cfg), tokenizer, transform


def trainable_state(model: Flamingo) -> dict:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


def latest_checkpoint(out: Path) -> Path | None:
    found = sorted(out.glob("checkpoint-*.pt"))
    return found[-1] if found else None


def save_checkpoint(out: Path, model, optimizer, step: int, cfg: TrainConfig, extra: dict | None = None) -> Path:
    path = out / f"checkpoint-{step:07d}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save({"model": trainable_state(model), "optimizer": optimizer.state_dict(), "step": step,
                "config": cfg.__dict__, "rng": torch.get_rng_state(), **(extra or {})}, tmp)
    tmp.rename(path)
    return path


def load_checkpoint(path: str | Path, device="cpu"):
    """(model, tokenizer, transform, state) from a checkpoint file, or from the latest one in a run folder."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise SystemExit(f"no checkpoint-*.pt in {path}")
        path = found
    state = torch.load(path, map_location="cpu", weights_only=False)
    known = TrainConfig.__dataclass_fields__
    model, tokenizer, transform = build_model(TrainConfig(**{k: v for k, v in state["config"].items() if k in known}))
    model.load_state_dict(state["model"], strict=False)
    return model.to(device), tokenizer, transform, state
