"""Dedup building blocks: URL keys, MinHash (equal to datasketch), near-duplicate estimates, and
decontamination recall and false positives on real data with a fixed seed."""
import random

import numpy as np
import pytest
from datasketch import MinHash

from pipeline.config import load_config
from pipeline.dedup import (
    EvalIndex,
    MinHasher,
    apply_verdict,
    bucket_pairs,
    load_eval_set,
    normalize_url,
    paragraph_hash,
    shingle_hashes,
    text_units,
)
from pipeline.schema import document_problems, split_paragraphs
from pipeline.stats import UnitStats

CFG = load_config().dedup


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of equal signature slots: MinHash's estimate of the Jaccard similarity."""
    return float(np.mean(a == b))


def test_signatures_of_many_groups_at_once_equal_one_by_one():
    hasher = MinHasher(CFG.near.num_perm, CFG.near.seed)
    groups = [shingle_hashes(text, 5) for text in ("one two three four five six", "a b c d e f g h", "solo")]
    offsets = np.cumsum([0] + [len(g) for g in groups[:-1]])
    together = hasher.signatures(np.concatenate(groups), offsets)
    assert all(np.array_equal(row, hasher.signature(g)) for row, g in zip(together, groups, strict=True))


def test_url_normalisation():
    key = normalize_url("HTTPS://www.Example.com:443/a/b/?utm_source=x&b=2&a=1&fbclid=zz#top", CFG.url.tracking_params)
    assert key == normalize_url("http://example.com/a/b?a=1&b=2", CFG.url.tracking_params) == "http://example.com/a/b?a=1&b=2"
    assert normalize_url("http://example.com:8080/") == "http://example.com:8080"
    assert normalize_url("http://example.com/a?id=1") != normalize_url("http://example.com/a?id=2")


def test_minhash_equals_datasketch():
    hasher = MinHasher(112, 1)
    shingles = shingle_hashes("the quick brown fox jumps over the lazy dog again and again today", 5)
    reference = MinHash(num_perm=112, seed=1, hashfunc=lambda x: x)
    reference.update_batch(shingles.tolist())
    assert np.array_equal(hasher.signature(shingles), reference.hashvalues)


def test_shingles_are_deterministic_and_normalised():
    a = shingle_hashes("Hello, World! This is a TEST of shingles.", 5)
    b = shingle_hashes("hello world this is a test of shingles", 5)
    assert np.array_equal(a, b) and len(a) == 4
    assert len(shingle_hashes("two words", 5)) == 1 and len(shingle_hashes("", 5)) == 0


def _article(shared_data):
    from pipeline.extract.record import extract_file

    doc = extract_file(shared_data / "html" / "trafilatura" / "blog.python.org.html", "https://blog.python.org/")
    return "\n\n".join(t for t in doc["texts"] if t)


def test_small_edits_keep_high_jaccard_and_other_pages_do_not(shared_data):
    from pipeline.extract.record import extract_file

    hasher = MinHasher(112, 1)
    base = _article(shared_data)
    sig = hasher.signature(shingle_hashes(base, 5))
    sentences = base.split(". ")
    edits = {
        "date": base.replace("2016", "2017"),
        "swap": ". ".join([sentences[1], sentences[0], *sentences[2:]]),
        "boilerplate": base + "\n\nShare this post on Twitter. Subscribe to our newsletter. Cookies help us.",
    }
    for name, text in edits.items():
        assert agreement(sig, hasher.signature(shingle_hashes(text, 5))) >= CFG.near.threshold, name
    other = extract_file(shared_data / "html" / "trafilatura" / "caktusgroup.com.django.html", "https://caktusgroup.com/")
    other_text = "\n\n".join(t for t in other["texts"] if t)
    assert agreement(sig, hasher.signature(shingle_hashes(other_text, 5))) < 0.2


def test_bucket_pairs():
    assert bucket_pairs(["a", "b", "c"], 20) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert bucket_pairs(["a", "b", "c"], 2) == [("a", "b"), ("a", "c")]


def test_text_units_split_sentences_lines_and_windows():
    units = text_units("First one. Second one!\nA line\n" + " ".join(["w"] * 60))
    assert units[:3] == ["First one.", "Second one!", "A line"] and len(units) > 4


@pytest.fixture(scope="module")
def eval_items(shared_data):
    folder = shared_data / "eval"
    return (load_eval_set("coco", str(folder / "captions_val2017.json.gz"), "coco_captions")
            + load_eval_set("textvqa", str(folder / "textvqa_val_questions_vqa_format.json.gz"), "vqa_questions"))


@pytest.fixture(scope="module")
def eval_index(eval_items):
    d = CFG.decontamination
    return EvalIndex(eval_items, d.threshold, d.num_perm, d.min_words, d.lsh_threshold)


def _lightly_edited(text: str, rng: random.Random) -> str:
    kind = rng.choice(["as written", "case", "punctuation", "one word"])
    if kind == "case":
        return text.upper() if rng.random() < 0.5 else text.lower()
    if kind == "punctuation":
        return text.rstrip(" .?!") + rng.choice(["!", "...", " ?", ""])
    if kind == "one word":
        words = text.split()
        words[rng.randrange(len(words))] = rng.choice(["blue", "house", "really", "seven"])
        return " ".join(words)
    return text


def test_decontamination_recall_on_pasted_items(eval_index, eval_items):
    rng = random.Random(1234)
    eligible = [i for i in eval_items if len(i.text.split()) >= CFG.decontamination.min_words]
    sample = rng.sample(eligible, 400)
    found = 0
    for item in sample:
        pasted = _lightly_edited(item.text, rng)
        paragraph = rng.choice([
            f"{pasted}",
            f"We spent the afternoon walking along the river. {pasted} Later we had dinner in town.",
            f"Photo of the week\n{pasted}\nSend us yours by Friday.",
        ])
        match = eval_index.match_paragraph(paragraph)
        found += bool(match)
    assert found / len(sample) >= 0.95


def test_decontamination_false_positives_on_clean_pages(eval_index, shared_data):
    from demo.samples import extracted_docs

    paragraphs = [p for d in extracted_docs() for t in d["texts"] if t for p in split_paragraphs(t)]
    hits = [p for p in paragraphs if eval_index.match_paragraph(p)]
    assert len(paragraphs) > 1000
    assert len(hits) / len(paragraphs) <= 0.005, hits[:5]


def test_apply_verdict_removes_and_merges():
    row = {"doc_id": "d", "texts": ["keep me\n\nboilerplate line", None, "A cat on a mat.\n\nmore"],
           "images": [None, "http://x/logo.png", None], "image_meta": [None, {"alt": None}, None]}
    verdict = {"reason": None, "removed_paragraphs": [paragraph_hash("Boilerplate  line")],
               "removed_images": ["http://x/logo.png"],
               "eval_matches": [{"paragraph": paragraph_hash("A cat on a mat."), "set": "coco", "item": "1/2", "score": 1.0}]}
    stats = UnitStats()
    out, reason = apply_verdict(row, verdict, CFG, stats)
    assert reason is None and out["texts"] == ["keep me\n\nmore"] and document_problems(out) == []
    assert stats.nodes == {"paragraph_domain_repeated": 1, "image_overused": 1, "paragraph_eval_coco": 1}
    mostly = {**verdict, "eval_matches": [{"paragraph": paragraph_hash("keep me"), "set": "s", "item": "9", "score": 0.9},
                                          {"paragraph": paragraph_hash("more"), "set": "s", "item": "8", "score": 0.8},
                                          {"paragraph": paragraph_hash("A cat on a mat."), "set": "s", "item": "7", "score": 1.0}]}
    assert apply_verdict(row, mostly, CFG, UnitStats())[1] == "eval_contaminated:s:7"
    assert apply_verdict(row, {"reason": "near_duplicate:abc"}, CFG, UnitStats())[1] == "near_duplicate:abc"
