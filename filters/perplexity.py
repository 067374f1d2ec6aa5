"""KenLM perplexity, as OBELICS scored documents (off by default: no real language model is offline).

Text is normalised as OBELICS did before scoring (control characters out, Unicode whitespace and
punctuation to ASCII, digits to 0, no lower-casing); each line is scored with sentence boundaries and
the document's perplexity is 10^(−Σ log10 p / Σ (words + 1)), rounded to one decimal. Needs the
`ufal-kenlm` package (`pip install ufal-kenlm`), imported only when `filter.perplexity.model` is set.
"""
from __future__ import annotations

import re
import unicodedata

_MODELS: dict[str, object] = {}
_DIGITS = re.compile(r"\d")
_PUNCT = str.maketrans({"，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"',
                        "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":",
                        "？": "?", "！": "!", "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ",
                        "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]",
                        "％": "%", "►": "-"})


def load_kenlm(path: str):
    if path not in _MODELS:
        import kenlm  # provided by ufal-kenlm

        _MODELS[path] = kenlm.Model(path)
    return _MODELS[path]


def normalise(line: str) -> str:
    line = "".join(ch for ch in line if unicodedata.category(ch)[0] != "C" or ch in "\t")
    line = " ".join(line.translate(_PUNCT).split())
    return _DIGITS.sub("0", line)


def perplexity(model, text: str) -> float | None:
    log_score, length = 0.0, 0
    for line in text.split("\n"):
        line = normalise(line)
        if not line:
            continue
        log_score += model.score(line, bos=True, eos=True)
        length += len(line.split()) + 1
    return round(10.0 ** (-log_score / length), 1) if length else None
