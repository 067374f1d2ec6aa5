"""The trainer is a Flamingo: gates at 0 give the LM, images reach only their own tokens, only the new
parts learn, and training learns and resumes exactly. Tiny random models on CPU."""
import json
import shutil

import pytest
import torch

from model.config import CONFIGS
from model.encoders import load_lm, load_vision
from model.flamingo import Flamingo, media_positions

CFG = CONFIGS["tiny"]


def tiny(cfg=CFG):
    lm, tokenizer = load_lm("tiny")
    vision, transform = load_vision("tiny")
    torch.manual_seed(1)
    return Flamingo(lm, vision, cfg), tokenizer


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


def test_a_long_document_is_windowed_around_its_images():
    """A page of thousands of tokens with a few images: every window holds an image with text after it."""
    import random

    from model.data import Segment, window

    m = 5000
    tokens = list(range(3000))
    for p in (40, 1700, 2995):
        tokens[p] = m
    seg = Segment(tokens, [b"a", b"b", b"c"])
    rng = random.Random(0)
    for _ in range(200):
        w = window(seg, 128, 5, m, rng)
        assert w is not None and len(w.tokens) == 128 and m in w.tokens[:-1]
        assert len(w.images) == w.tokens.count(m)
    starts = {tuple(window(seg, 128, 5, m, rng).images) for _ in range(200)}
    assert starts == {(b"a",), (b"b",), (b"c",)}


def test_next_image_variant():
    m = 99
    ids = torch.tensor([[1, 2, m, 3, m, 4]])
    assert media_positions(ids, torch.zeros_like(ids), m, torch.tensor([True]))[0].tolist() == [0, 0, 0, 1, 1, -1]


def gradients_of_one_step(model):
    open_gates(model)
    m = model.media_token_id
    ids = torch.tensor([[256, 10, m, 12, model.end_of_chunk_id, 257]])
    ce, loss = model.loss(model(ids, torch.randn(1, 1, 3, 32, 32)), ids)
    loss.backward()
    return {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_frozen_encoders_leave_only_resampler_cross_attention_and_new_rows_to_learn():
    """Flamingo's recipe for pretrained encoders (smol's default)."""
    model, tokenizer = tiny(CFG.replace(freeze_lm=True, freeze_vision=True))
    with_grad = gradients_of_one_step(model)
    new_parts = {id(p) for p in [*model.resampler.parameters(), *model.blocks.parameters(), model.embedding.added.weight]}
    assert {id(p) for p in model.parameters() if p.requires_grad} == new_parts
    assert with_grad <= new_parts
    assert id(model.embedding.added.weight) in with_grad
    assert {id(p) for p in model.resampler.parameters()} & with_grad
    assert not any(p.requires_grad for p in model.vision.parameters())
    base = model.lm.get_input_embeddings().base.weight
    assert not base.requires_grad and base.grad is None
    assert CONFIGS["smol"].freeze_lm and CONFIGS["smol"].freeze_vision


def test_random_encoders_train_with_the_rest():
    """The tiny config's LM and vision encoder are random: frozen, only the cross-attention could learn."""
    model, _ = tiny()
    assert not CFG.freeze_lm and not CFG.freeze_vision
    assert all(p.requires_grad for p in model.parameters())
    with_grad = gradients_of_one_step(model)
    assert {id(p) for p in model.vision.parameters()} <= with_grad
    assert id(model.lm.get_input_embeddings().base.weight) in with_grad
    model.train()
    assert model.vision.training  # a trained encoder is not held in eval mode


def test_spike_guard_skips_spikes_counts_them_and_accepts_a_new_level():
    from model.train import SpikeGuard

    guard = SpikeGuard(factor=2.0, warmup=3, patience=3)
    assert [guard.is_spike(x) for x in (5.0, 9.0, 4.0)] == [False, False, False]  # warm-up: never judged
    mean = guard.mean
    assert guard.is_spike(2.0 * mean + 0.01) and guard.mean == mean and guard.skipped == 1
    assert not guard.is_spike(mean) and guard.in_a_row == 0
    assert guard.is_spike(float("nan")) and guard.is_spike(float("inf")) and guard.skipped == 3
    # a loss that stays high: skipped `patience` times in a row, then taken as the new level
    guard = SpikeGuard(factor=2.0, warmup=1, patience=3)
    guard.is_spike(1.0)
    assert [guard.is_spike(10.0) for _ in range(5)] == [True, True, True, False, False]
    assert guard.mean == 10.0 and guard.skipped == 3
    assert not any(SpikeGuard(factor=0.0, warmup=0).is_spike(x) for x in (1.0, 100.0, 1e6))


@pytest.fixture(scope="module")
def shards(shared_data, tmp_path_factory):
    from demo.samples import build_sample_shards

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


def test_health_is_logged_for_every_block(shards, tmp_path):
    records = train(shards, tmp_path / "h", 12)
    blocks = len(tiny()[0].blocks)
    for r in records:
        assert len(r["attn_gate"]) == len(r["ff_gate"]) == len(r["xattn_rms"]) == len(r["xattn_grad_norm"]) == blocks
        assert r["resampler_grad_norm"] >= 0 and r["grad_norm"] > 0 and r["skipped"] is False
    # gates start shut, so at step 1 the blocks add nothing; training opens them and they start to add
    assert records[0]["attn_gate"] == [0.0] * blocks and records[0]["xattn_rms"] == [0.0] * blocks
    assert all(g > 0 for g in records[0]["xattn_grad_norm"])
    assert any(abs(g) > 0 for g in records[-1]["attn_gate"]) and any(x > 0 for x in records[-1]["xattn_rms"])


def test_a_spike_is_not_applied_and_is_counted(shards, tmp_path):
    """With the factor near 0 every judged step is a spike: the weights after it are the weights before."""
    records = train(shards, tmp_path / "s", 14, "--set", "spike_factor=0.01", "--set", "checkpoint_every=10")
    assert [r["skipped"] for r in records] == [False] * 10 + [True] * 4
    assert records[-1]["spikes"] == 4
    before = torch.load(tmp_path / "s" / "checkpoint-0000010.pt", weights_only=False)
    after = torch.load(tmp_path / "s" / "checkpoint-0000014.pt", weights_only=False)
    assert before["model"].keys() == after["model"].keys()
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    assert after["spike_guard"]["skipped"] == 4
    resumed = train(shards, tmp_path / "s", 16, "--set", "spike_factor=0.01", "--resume")
    assert [r["spikes"] for r in resumed] == [5, 6]  # the guard's state travels with the checkpoint


def test_eval_loss_and_grounding_eval_are_logged(shards, tmp_path):
    records = train(shards, tmp_path / "e", 4, "--eval-shards", str(shards), "--set", "eval_every=2",
                    "--set", "eval_batches=2")
    assert "eval_loss" in records[1] and "eval_loss" not in records[0] and records[3]["eval_loss"] > 0
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert result["step"] == 4
    right, shuffled = result["right"], result["shuffled"]
    assert right["docs"] == shuffled["docs"] > 0 and right["tokens"] == shuffled["tokens"] > 0
    assert right["eval_loss"] != shuffled["eval_loss"]  # the same text, other pixels


def test_holdout_keeps_documents_out_of_training_and_evaluates_on_them(shards, tmp_path):
    import pyarrow.parquet as pq

    from model.data import ShardStream, is_held_out, shard_files

    ids = pq.read_table(shard_files(shards), columns=["doc_id"]).column(0).to_pylist()
    held = {i for i in ids if is_held_out(i, 0.25)}
    assert 0 < len(held) < len(ids) and held == {i for i in ids if is_held_out(i, 0.25)}
    model, tokenizer = tiny()
    stream = ShardStream(shard_files(shards), tokenizer, None, model.media_token_id, model.end_of_chunk_id,
                         CFG.replace(holdout=0.25), epochs=1)
    assert sorted(row["doc_id"] for row in stream._documents(0, 1)) == sorted(set(ids) - held)
    train(shards, tmp_path / "h", 2, "--set", "holdout=0.25")
    result = json.loads((tmp_path / "h" / "eval.json").read_text())
    assert 0 < result["right"]["docs"] <= len(held)


def test_a_held_out_share_too_small_to_shuffle_keeps_the_run(shared_data, shards, tmp_path):
    from demo.samples import build_sample_shards

    build_sample_shards(tmp_path / "one", 1, shared_data)
    train(shards, tmp_path / "t", 1, "--eval-shards", str(tmp_path / "one"))
    result = json.loads((tmp_path / "t" / "eval.json").read_text())
    assert result["right"]["docs"] == 1 and result["shuffled"] is None
    assert "two documents with images" in result["shuffled_skipped"]


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_training_matches_eager(shards, tmp_path):
    eager = train(shards, tmp_path / "eager", 3)
    compiled = train(shards, tmp_path / "compiled", 3, "--set", "compile=true")
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=1e-3)


def test_packed_images_give_the_dense_result():
    """The loader sends only the real images with their slots; the model must see what the dense
    (B, max_images, …) layout with padding gave it."""
    model, _ = tiny()
    open_gates(model)
    model.eval()
    m = model.media_token_id
    ids = torch.tensor([[256, m, 10, 11, m, 12, 257], [256, 13, m, 14, 15, 16, 257]])
    dense = torch.zeros(2, CFG.max_images, 3, 32, 32)
    real = torch.randn(3, 3, 32, 32)
    dense[0, 0], dense[0, 1], dense[1, 0] = real
    slots = torch.tensor([0, 1, CFG.max_images])
    assert torch.allclose(model(ids, real, image_slots=slots), model(ids, dense), atol=1e-5)


def test_shuffled_images_come_from_other_documents():
    from model.evaluate import shuffle_images

    docs = [{"texts": [None, f"doc {i}", None], "image_bytes": [bytes([i]), None, bytes([i])]} for i in range(6)]
    docs.append({"texts": ["no image"], "image_bytes": [None]})
    shuffled = shuffle_images(docs, seed=3)
    assert shuffle_images(docs, seed=3) == shuffled
    for i, (doc, new) in enumerate(zip(docs, shuffled)):
        assert new["texts"] == doc["texts"]
        assert [b is None for b in new["image_bytes"]] == [b is None for b in doc["image_bytes"]]
        assert all(b != bytes([i]) for b in new["image_bytes"] if b is not None)
    with pytest.raises(ValueError, match="two documents"):
        shuffle_images(docs[:1], seed=0)


def test_evaluate_command(shards, tmp_path, capsys):
    from model import evaluate

    train(shards, tmp_path / "r", 2)
    right = evaluate.main(["--checkpoint", str(tmp_path / "r"), "--shards", str(shards), "--max-docs", "30"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"eval_loss={right['eval_loss']} tokens={right['tokens']} docs={right['docs']}")
    assert 0 < right["docs"] <= 30 and right["after_image_tokens"] <= right["tokens"]
    again = evaluate.main(["--checkpoint", str(tmp_path / "r" / "checkpoint-0000002.pt"), "--shards", str(shards),
                           "--max-docs", "30"])
    assert again == right
    blind = evaluate.main(["--checkpoint", str(tmp_path / "r"), "--shards", str(shards), "--max-docs", "30",
                           "--shuffle-images", "--seed", "1"])
    assert blind["tokens"] == right["tokens"] and blind["eval_loss"] != right["eval_loss"]


def test_generate_from_a_checkpoint(shards, tmp_path, shared_data):
    from model import generate

    train(shards, tmp_path / "g", 2)
    photo = sorted((shared_data / "images" / "photos").glob("*.jpg"))[0]
    text = generate.main(["--checkpoint", str(tmp_path / "g" / "checkpoint-0000002.pt"), "--prompt",
                          "<image>A photo of", "--images", str(photo), "--max-new-tokens", "5"])
    again = generate.main(["--checkpoint", str(tmp_path / "g"), "--prompt", "<image>A photo of", "--images",
                           str(photo), "--max-new-tokens", "5"])
    assert 0 < len(text.encode("utf-8", "replace")) <= 5 * 3 and again == text  # ≤ 5 byte tokens, greedy
    with pytest.raises(SystemExit, match="1 <image> but 0 images"):
        generate.main(["--checkpoint", str(tmp_path / "g" / "checkpoint-0000002.pt"), "--prompt", "<image>x"])


def test_smollm2_and_mobilenet_load_when_installed():
    from model.encoders import load_mobilenet_v2, mobilenet_v2_weights, smollm2_path

    if mobilenet_v2_weights() is None or smollm2_path() is None:
        pytest.skip("offline weights not installed (make weights)")
    vision = load_mobilenet_v2().eval()
    assert vision(torch.zeros(1, 3, 224, 224)).shape == (1, 49, 1280)


def test_train_settings_use_the_pipeline_grammar(shards, tmp_path):
    """--set values are read as YAML and checked against the field's type; unknown keys are refused."""
    from model.train import parse_args

    base = ["--shards", str(shards), "--out", str(tmp_path), "--steps", "1"]
    _, cfg = parse_args([*base, "--set", "lr=3e-4", "--set", "freeze_lm=true", "--set", "holdout=0.1"])
    assert cfg.lr == 3e-4 and cfg.freeze_lm is True and cfg.holdout == 0.1
    for bad in ("batch_size=2.5", "no_such_field=1", "freeze_lm=maybe"):
        with pytest.raises(SystemExit):
            parse_args([*base, "--set", bad])
