"""The main-content model: a small two-stage network over block features, inference in numpy.

Stage one scores each block from its own features (`pipeline.extract.features`); stage two adds the stage-one
scores of its neighbours and of the whole page, so a short line between two kept paragraphs stays
and a long comment under a forum-less article goes. The weights live in one .npz file (see
`tools/content_model.py` for how it is trained and `docs/content-model.md` for what it knows).
"""
from __future__ import annotations

import functools
import io
import pkgutil
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.extract import compiled
from pipeline.extract.features import FEATURES

DEFAULT_PATH = Path(__file__).resolve().parent / "content_model.npz"
SCORE_WINDOWS = (1, 3, 10)


def score_features(p1: np.ndarray) -> np.ndarray:
    """The stage-two inputs a block gets from the stage-one scores around it."""
    return compiled.score_features(p1, SCORE_WINDOWS)


class Mlp:
    """x → sigmoid(relu(standardised x · W1 + b1) · w2 + b2)."""

    def __init__(self, mean, scale, w1, b1, w2, b2):
        self.mean, self.scale, self.w1, self.b1, self.w2, self.b2 = mean, scale, w1, b1, w2, b2

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.output(np.maximum(((x - self.mean) / self.scale) @ self.w1 + self.b1, 0.0))

    def output(self, hidden: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(hidden @ self.w2 + self.b2)))

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """The first layer with the standardisation folded in: x · W + b equals the layer's input."""
        w = self.w1 / self.scale[:, None]
        return w, self.b1 - (self.mean / self.scale) @ self.w1

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}_{k}": getattr(self, k) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}

    @classmethod
    def from_arrays(cls, data, prefix: str) -> "Mlp":
        return cls(*(data[f"{prefix}_{k}"].astype(np.float64) for k in ("mean", "scale", "w1", "b1", "w2", "b2")))


class ContentModel:
    def __init__(self, stage1: Mlp, stage2: Mlp):
        self.stage1, self.stage2 = stage1, stage2
        # Inference folds each network's standardisation into its first layer, and multiplies the block
        # features by both first layers at once (stage two's rows for them): a third of the time of
        # taking each step as written, and equal to it within 1e-14.
        w1, self._b1 = stage1.folded()
        w2, self._b2 = stage2.folded()
        n_features, self._hidden1 = w1.shape
        self._w_features = np.ascontiguousarray(np.hstack([w1, w2[:n_features]]))
        self._w_scores = np.ascontiguousarray(w2[n_features:])

    def scores(self, features: np.ndarray) -> np.ndarray:
        both = features @ self._w_features
        h1 = both[:, :self._hidden1]
        h1 += self._b1
        p1 = self.stage1.output(np.maximum(h1, 0.0, out=h1))
        h2 = both[:, self._hidden1:]
        h2 += score_features(p1) @ self._w_scores
        h2 += self._b2
        return self.stage2.output(np.maximum(h2, 0.0, out=h2))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, features=np.array(FEATURES),
                            **{k: v.astype(np.float32) for k, v in {**self.stage1.arrays("s1"),
                                                                   **self.stage2.arrays("s2")}.items()})

    @classmethod
    def load(cls, path: Path | io.BytesIO) -> "ContentModel":
        with np.load(path, allow_pickle=False) as data:
            if tuple(str(f) for f in data["features"]) != FEATURES:
                raise ValueError(f"{path}: trained on other block features than pipeline/extract/features.py computes; "
                                 "retrain it (make content-model)")
            return cls(Mlp.from_arrays(data, "s1"), Mlp.from_arrays(data, "s2"))


@functools.lru_cache(maxsize=4)
def load(path: str = "") -> ContentModel:
    """The model at `path` ("" = the one shipped beside this module), read once per process.

    Inference runs on one BLAS thread: its matrices are small (blocks × 80 features × 16 units), and
    OpenBLAS's extra threads only spin on cores that Spark gave to other tasks (on the WCXB pages a
    page's scores took 1.46 ms of CPU with the default threads and 0.85 ms with one, in the same time)."""
    threadpool_limits(1, user_api="blas")
    if path:
        return ContentModel.load(Path(path))
    # Read through the package loader: on a cluster the module lives inside the --py-files zip.
    return ContentModel.load(io.BytesIO(pkgutil.get_data("pipeline.extract", DEFAULT_PATH.name)))


def page_threshold(scores: np.ndarray, words: np.ndarray) -> float:
    """The score from which keeping a page's blocks gives the best word F1 that the scores themselves
    expect, or infinity where keeping nothing does: a page the model is sure of keeps only its sure
    blocks, a page it doubts its likeliest ones, and a page more likely without main content than with
    any choice of blocks keeps none (docs/content-model.md derives it)."""
    return compiled.page_threshold(scores, words)


def kept_by_scores(scores: np.ndarray, words: np.ndarray, is_image: list[bool], threshold: float | None,
                   min_threshold: float) -> np.ndarray:
    """Which of a page's blocks stay: those scoring at least `threshold`, or, when it is None, at least
    the page's own cut (page_threshold, from each block's `words`); images go or stay with the text
    around them."""
    if threshold is None:
        threshold = max(page_threshold(scores, words), min_threshold)
    return keep_blocks(scores, is_image, threshold)


def keep_blocks(scores: np.ndarray, is_image: list[bool], threshold: float) -> np.ndarray:
    """Which blocks stay: text blocks scoring at least the threshold, and each image whose nearest
    text block before or after it stays (an image goes or stays with the text around it)."""
    return compiled.keep_blocks(scores, is_image, threshold)
