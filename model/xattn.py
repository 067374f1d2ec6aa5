"""Gated cross-attention dense blocks, inserted before LM decoder layers.

Each text token attends only to the visual tokens of one image (chosen by `media_index`, −1 for none);
a token with no image gets exactly zero output, and tanh gates start at 0, so at step 0 the model is
the language model.
"""
from __future__ import annotations

import torch
from torch import nn

from model.resampler import FeedForward


class MaskedCrossAttention(nn.Module):
    def __init__(self, dim: int, *, media_dim: int, heads: int, dim_head: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(media_dim, 2 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        # IDEFICS needed normalised queries and keys to train stably at scale.
        self.q_norm = nn.LayerNorm(dim_head) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim_head) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, media: torch.Tensor, media_index: torch.Tensor) -> torch.Tensor:
        """x: (B, T, dim); media: (B, M, L, media_dim), M images of L tokens each; media_index: (B, T)."""
        b, t, _ = x.shape
        m, latents = media.shape[1], media.shape[2]
        q = self.q_norm(self.to_q(self.norm(x)).view(b, t, self.heads, -1)).transpose(1, 2)
        k, v = self.to_kv(media.reshape(b, m * latents, -1)).chunk(2, dim=-1)
        k = self.k_norm(k.view(b, m * latents, self.heads, -1)).transpose(1, 2)
        v = v.view(b, m * latents, self.heads, -1).transpose(1, 2)
        key_image = torch.arange(m, device=x.device).repeat_interleave(latents)       # (M·L,)
        allowed = media_index.unsqueeze(-1) == key_image.view(1, 1, -1)              # (B, T, M·L)
        has_image = media_index >= 0
        # rows with no image would softmax over nothing: let them attend anywhere, then zero them
        allowed = allowed | ~has_image.unsqueeze(-1)
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))
        out = self.to_out(out.transpose(1, 2).reshape(b, t, -1))
        return out * has_image.unsqueeze(-1).to(out.dtype)


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, dim: int, *, media_dim: int, heads: int, dim_head: int, qk_norm: bool):
        super().__init__()
        self.attention = MaskedCrossAttention(dim, media_dim=media_dim, heads=heads, dim_head=dim_head, qk_norm=qk_norm)
        self.attention_gate = nn.Parameter(torch.zeros(1))
        self.feed_forward = FeedForward(dim)
        self.feed_forward_gate = nn.Parameter(torch.zeros(1))
        self.update_rms = torch.zeros(())  # health: RMS of what the last forward added to tokens with an image

    def forward(self, x, media, media_index):
        has_image = (media_index >= 0).unsqueeze(-1).to(x.dtype)
        y = x + self.attention_gate.tanh() * self.attention(x, media, media_index)
        y = y + self.feed_forward_gate.tanh() * self.feed_forward(y) * has_image
        if self.training:  # a health figure of training steps; evaluation and generation skip the pass
            with torch.no_grad():  # kept on the device: read once per step with the other health figures
                update = (y - x).float().pow(2).sum(-1)
                self.update_rms = (update.sum() / (has_image.sum() * x.shape[-1]).clamp(min=1)).sqrt()
        return y


class FlamingoLayer(nn.Module):
    """A frozen decoder layer with a gated cross-attention block in front. The visual context is set
    on `context` by the model before each forward pass, since HF decoders call their layers
    themselves with their own arguments."""

    def __init__(self, block: GatedCrossAttentionBlock, decoder_layer: nn.Module, context: dict):
        super().__init__()
        self.block, self.decoder_layer, self.context = block, decoder_layer, context
        self.checkpoint = False

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:  # HF models read attributes of their layers (attention_type, …)
            return getattr(self.decoder_layer, name)

    def forward(self, hidden_states, *args, **kwargs):
        media = self.context.get("media")
        if media is not None:
            if self.checkpoint and torch.is_grad_enabled():
                hidden_states = torch.utils.checkpoint.checkpoint(
                    self.block, hidden_states, media, self.context["media_index"], use_reentrant=False)
            else:
                hidden_states = self.block(hidden_states, media, self.context["media_index"])
        return self.decoder_layer(hidden_states, *args, **kwargs)
