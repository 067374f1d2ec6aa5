"""Flamingo: a vision encoder, a Perceiver Resampler, and a causal LM with gated cross-attention
blocks before every N-th decoder layer. Pretrained encoders stay frozen (`freeze_lm`,
`freeze_vision`). Two tokens are added, <image> and <|endofchunk|>; their embedding rows always
train, the base vocabulary only when the LM does."""
from __future__ import annotations

import torch
from torch import nn

from model.resampler import PerceiverResampler
from model.xattn import FlamingoLayer, GatedCrossAttentionBlock


class ExtendedEmbedding(nn.Module):
    """The LM's frozen embedding plus trainable rows for the added tokens."""

    def __init__(self, base: nn.Embedding, added: int):
        super().__init__()
        self.base, self.base_vocab = base, base.num_embeddings
        self.added = nn.Embedding(added, base.embedding_dim)
        with torch.no_grad():
            self.added.weight.copy_(base.weight.mean(0, keepdim=True).expand(added, -1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        new = ids >= self.base_vocab
        out = self.base(ids.clamp(max=self.base_vocab - 1))
        return torch.where(new.unsqueeze(-1), self.added((ids - self.base_vocab).clamp(min=0)), out)


class ExtendedHead(nn.Module):
    """The LM's frozen output head plus logits for the added tokens (tied to their embeddings)."""

    def __init__(self, base: nn.Module, added: nn.Embedding):
        super().__init__()
        self.base, self.added = base, added

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.base(hidden), hidden @ self.added.weight.t()), dim=-1)


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a Hugging Face causal LM (Llama's model.layers, GPT-2's transformer.h …)."""
    config = lm.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"no list of {count} decoder layers found in {type(lm).__name__}")


def media_positions(input_ids, doc_ids, media_token_id: int, attend_next: torch.Tensor | None = None):
    """φ: for every token, the index of the image (in order of <image> tokens in its row) it may
    attend to, or −1. That is the most recent <image> at or before it within its own document;
    tokens before a document's first image attend to none. Rows flagged in `attend_next` use the
    next image of the document instead (Flamingo trains with p = 0.5)."""
    is_media = (input_ids == media_token_id).long()
    seen = is_media.cumsum(1)                                              # images up to and including t
    new_doc = torch.ones_like(doc_ids, dtype=torch.bool)
    new_doc[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    before_doc = torch.where(new_doc, seen - is_media, torch.zeros_like(seen)).cummax(1).values
    previous = torch.where(seen > before_doc, seen - 1, torch.full_like(seen, -1))
    if attend_next is None or not attend_next.any():
        return previous
    end_doc = torch.ones_like(new_doc)
    end_doc[:, :-1] = new_doc[:, 1:]
    big = torch.full_like(seen, torch.iinfo(seen.dtype).max)
    in_doc_total = torch.where(end_doc, seen, big).flip(1).cummin(1).values.flip(1)
    upcoming = seen - is_media                                             # index of the next image
    following = torch.where(upcoming < in_doc_total, upcoming, torch.full_like(seen, -1))
    return torch.where(attend_next.view(-1, 1), following, previous)


class Flamingo(nn.Module):
    def __init__(self, lm: nn.Module, vision: nn.Module, cfg):
        super().__init__()
        self.lm, self.vision, self.cfg = lm, vision, cfg
        for module, frozen in ((lm, cfg.freeze_lm), (vision, cfg.freeze_vision)):
            for p in module.parameters():
                p.requires_grad_(not frozen)
        base_vocab = lm.get_input_embeddings().num_embeddings
        self.media_token_id, self.end_of_chunk_id = base_vocab, base_vocab + 1
        embedding = ExtendedEmbedding(lm.get_input_embeddings(), 2)
        head = ExtendedHead(lm.get_output_embeddings(), embedding.added)
        lm.set_input_embeddings(embedding)
        lm.set_output_embeddings(head)
        self.embedding = embedding
        self.resampler = PerceiverResampler(vision.dim, depth=cfg.resampler_depth, heads=cfg.resampler_heads,
                                            dim_head=cfg.resampler_dim_head, num_latents=cfg.num_latents)
        self.context: dict = {}
        layers = decoder_layers(lm)
        dim = lm.config.hidden_size
        self.blocks = nn.ModuleList()
        for i in range(len(layers)):
            if (i + 1) % cfg.cross_attn_every == 0:
                block = GatedCrossAttentionBlock(dim, media_dim=vision.dim, heads=cfg.xattn_heads,
                                                 dim_head=cfg.xattn_dim_head, qk_norm=cfg.qk_norm)
                self.blocks.append(block)
                layers[i] = FlamingoLayer(block, layers[i], self.context)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.freeze_vision:
            self.vision.eval()  # BatchNorm statistics stay the pretrained ones
        return self

    def set_activation_checkpointing(self, on: bool) -> None:
        for module in self.lm.modules():
            if isinstance(module, FlamingoLayer):
                module.checkpoint = on

    def encode_images(self, images: torch.Tensor, slots: torch.Tensor | None = None, rows: int = 0) -> torch.Tensor:
        """The encoder, then the trainable resampler. Dense: (B, M, 3, H, W) → (B, M, latents, dim).
        Packed: the batch's real images only, (N, 3, H, W), with `slots` (N,) their places b·max_images + k
        in a (`rows`, max_images) grid → (rows, max_images, latents, dim), zeros where no image is: the
        loader sends no padding images, so none is encoded or copied to the device."""
        flat = images if slots is not None else images.flatten(0, 1)
        if self.cfg.freeze_vision:
            with torch.inference_mode():
                features = self.vision(flat)
            features = features.clone()  # a normal tensor again, so the resampler can save it for backward
        else:
            features = self.vision(flat)
        latents = self.resampler(features)
        if slots is None:
            return latents.view(*images.shape[:2], *latents.shape[1:])
        grid = latents.new_zeros(rows * self.cfg.max_images, *latents.shape[1:]).index_copy(0, slots, latents)
        return grid.view(rows, self.cfg.max_images, *latents.shape[1:])

    def forward(self, input_ids, images=None, doc_ids=None, attention_mask=None, attend_next=None, image_slots=None):
        """Logits (B, T, vocab + 2). `images` dense (B, M, 3, H, W), or packed with `image_slots`."""
        if images is not None and images.shape[0] > 0 and (image_slots is not None or images.shape[1] > 0):
            doc_ids = torch.zeros_like(input_ids) if doc_ids is None else doc_ids
            self.context["media"] = self.encode_images(images, image_slots, input_ids.shape[0])
            self.context["media_index"] = media_positions(input_ids, doc_ids, self.media_token_id, attend_next)
        try:
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        finally:
            self.context.clear()

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy over next tokens, the loss that is optimised: + z-loss when configured)."""
        logits, labels = logits[:, :-1].float(), labels[:, 1:]
        valid = labels != -100
        ce = nn.functional.cross_entropy(logits[valid], labels[valid])
        total = ce
        if self.cfg.z_loss:
            total = total + self.cfg.z_loss * logits[valid].logsumexp(-1).pow(2).mean()
        return ce, total

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]
