"""The trainer is a Flamingo: gates at 0 give the LM, images reach only their own tokens, only the new
parts learn, and training learns and resumes exactly. Tiny random models on CPU."""
import json

import pytest
import torch

from model.config import CONFIGS
from model.encoders import load_lm, load_vision
from model.flamingo import Flamingo, media_positions

CFG = CONFIGS["tiny"]


def tiny():
    lm, tokenizer = load_lm("tiny")
    vision, transform = load_vision("tiny")
    torch.manual_seed(1)
    return Flamingo(lm, vision, CFG), tokenizer


def open_gates(model):
    with torch.no_grad():
        for block in model.blocks:
            block.attention_gate.fill_(1.0)
            block.feed_forward_gate.fill_(1.0)


def test_gates_at_zero_give_the_frozen_lm_exactly():
    model, tokenizer = tiny()
    reference, _ = load_lm("tiny")
    text = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode("hello interleaved world")])
    images = torch.randn(1, 2, 3, 32, 32)
    assert torch.equal(model(text, images)[..., : tokenizer.vocab_size], reference(text).logits)
    m = model.media_token_id
    with_images = torch.tensor([[256, 104, 105, m, 97, 98, m, 99]])
    plain = model.lm(input_ids=with_images).logits  # the same LM, no visual context at all
    assert torch.equal(model(with_images, images), plain)


def test_image_k_reaches_only_its_tokens_and_documents_reset():
    """φ at the cross-attention itself: image k's visual tokens reach exactly the tokens from the k-th
    <image> up to the next one, within its document. Through the LM's self-attention its effect then
    flows on to every later token, as in any Flamingo; never to earlier ones."""
    model, _ = tiny()
    open_gates(model)
    model.eval()
    m = model.media_token_id
    ids = torch.tensor([[256, 10, 11, m, 12, 13, m, 14, 15, 257, 256, 16, m, 17]])
    docs = torch.tensor([[0] * 10 + [1] * 4])
    images = torch.randn(1, 3, 3, 32, 32)
    block = model.blocks[0]
    hidden = model.lm.get_input_embeddings()(ids)
    index = media_positions(ids, docs, m)
    assert index[0].tolist() == [-1, -1, -1, 0, 0, 0, 1, 1, 1, 1, -1, -1, 2, 2]
    base_media = model.encode_images(images)
    base_block = block(hidden, base_media, index)
    base_logits = model(ids, images, docs)
    for k, (start, stop) in enumerate([(3, 6), (6, 10), (12, 14)]):
        changed = images.clone()
        changed[0, k] = torch.randn(3, 32, 32)
        moved = (block(hidden, model.encode_images(changed), index) - base_block).abs().amax(-1)[0] > 0
        assert set(torch.nonzero(moved).flatten().tolist()) == set(range(start, stop)), k
        logits_moved = (model(ids, changed, docs) - base_logits).abs().amax(-1)[0] > 1e-6
        assert not logits_moved[:start].any() and logits_moved[start]
    # text before the first image is unaffected by any image
    assert torch.equal(base_logits[0, :3], model(ids, torch.randn(1, 3, 3, 32, 32), docs)[0, :3])


def test_next_image_variant():
    m = 99
    ids = torch.tensor([[1, 2, m, 3, m, 4]])
    assert media_positions(ids, torch.zeros_like(ids), m, torch.tensor([True]))[0].tolist() == [0, 0, 0, 1, 1, -1]


def test_only_resampler_cross_attention_and_new_rows_learn():
    model, tokenizer = tiny()
    open_gates(model)
    m = model.media_token_id
    ids = torch.tensor([[256, 10, m, 12, model.end_of_chunk_id, 257]])
    ce, loss = model.loss(model(ids, torch.randn(1, 1, 3, 32, 32)), ids)
    loss.backward()
    new_parts = {id(p) for p in [*model.resampler.parameters(), *model.blocks.parameters(), model.embedding.added.weight]}
    with_grad = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {id(p) for p in model.parameters() if p.requires_grad} == new_parts
    assert with_grad <= new_parts
    assert id(model.embedding.added.weight) in with_grad
    assert {id(p) for p in model.resampler.parameters()} & with_grad
    assert not any(p.requires_grad for p in model.vision.parameters())
    base = model.lm.get_input_embeddings().base.weight
    assert not base.requires_grad and base.grad is None


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    from pipeline.samples import build_sample_shards

    folder = tmp_path_factory.mktemp("shards")
    build_sample_shards(folder, 120, shared_data)
    return folder


def train(shards, out, steps, *extra):
    from model import train as trainer

    return trainer.main(["--shards", str(shards), "--out", str(out), "--config", "tiny", "--steps", str(steps),
                         "--set", "lr=0.003", "--set", "warmup_steps=2", *extra])


def test_training_lowers_the_loss_and_resumes_exactly(shards, tmp_path):
    full = train(shards, tmp_path / "full", 40)
    losses = [r["loss"] for r in full]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05
    assert all({"step", "loss", "lr", "tokens", "images", "seconds"} <= set(r) for r in full)
    part = tmp_path / "part"
    train(shards, part, 25)
    resumed = train(shards, part, 40, "--resume")
    assert [r["step"] for r in resumed] == list(range(26, 41))
    logged = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in logged] == losses
    assert sorted(p.name for p in part.glob("checkpoint-*.pt")) == ["checkpoint-0000025.pt", "checkpoint-0000040.pt"]


def test_eval_loss_is_logged(shards, tmp_path):
    records = train(shards, tmp_path / "e", 4, "--eval-shards", str(shards), "--set", "eval_every=2",
                    "--set", "eval_batches=2")
    assert "eval_loss" in records[1] and "eval_loss" not in records[0] and records[3]["eval_loss"] > 0


def test_generate_from_a_checkpoint(shards, tmp_path, shared_data):
    from model import generate

    train(shards, tmp_path / "g", 2)
    photo = sorted((shared_data / "images" / "photos").glob("*.jpg"))[0]
    text = generate.main(["--checkpoint", str(tmp_path / "g" / "checkpoint-0000002.pt"), "--prompt",
                          "<image>A photo of", "--images", str(photo), "--max-new-tokens", "5"])
    assert isinstance(text, str)
    with pytest.raises(SystemExit, match="1 <image> but 0 images"):
        generate.main(["--checkpoint", str(tmp_path / "g" / "checkpoint-0000002.pt"), "--prompt", "<image>x"])


def test_smollm2_and_mobilenet_load_when_installed():
    from model.encoders import load_mobilenet_v2, mobilenet_v2_weights, smollm2_path

    if mobilenet_v2_weights() is None or smollm2_path() is None:
        pytest.skip("offline weights not installed (make weights)")
    vision = load_mobilenet_v2().eval()
    assert vision(torch.zeros(1, 3, 224, 224)).shape == (1, 49, 1280)
