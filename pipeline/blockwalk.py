"""The compiled walk (pipeline/_blockwalk.pyx), where it is built for the installed selectolax.

`walk_blocks` is None when it is not, and `unavailable` says why; pipeline.extract then runs its
Python loop, which gives the same blocks, about twice as slowly (`make blockwalk` builds it).
Its helpers (None likewise): `valid_utf8`, whether bytes decode as UTF-8, without making the text; and
the per-block loops of pipeline.blocks' features (`text_counts`, `context_columns`, `title_shares`,
`window_mean`, `fill_features`), each tested equal to the numpy and Python code it stands in for.
"""
from __future__ import annotations

import ctypes
import hashlib
from pathlib import Path

import selectolax
import selectolax.lexbor


def _load():
    try:
        # The module calls lexbor functions that live in selectolax's own extension, which Python
        # loaded privately: load it again into the global namespace so those calls resolve.
        ctypes.CDLL(selectolax.lexbor.__file__, mode=ctypes.RTLD_GLOBAL)
        from pipeline import _blockwalk
    except (ImportError, OSError) as exc:
        return None, f"the compiled walk is not built ({exc}); make blockwalk builds it"
    if _blockwalk.SELECTOLAX_VERSION != selectolax.__version__:
        return None, (f"the compiled walk was built against selectolax {_blockwalk.SELECTOLAX_VERSION}, "
                      f"{selectolax.__version__} is installed; make blockwalk rebuilds it")
    source = Path(__file__).with_name("_blockwalk.pyx")
    if source.is_file() and hashlib.sha256(source.read_bytes()).hexdigest()[:16] != _blockwalk.SOURCE_DIGEST:
        return None, "the compiled walk is older than pipeline/_blockwalk.pyx; make blockwalk rebuilds it"
    return _blockwalk, None


_module, unavailable = _load()
walk_blocks = _module.walk_blocks if _module else None
valid_utf8 = _module.valid_utf8 if _module else None
text_counts = _module.text_counts if _module else None
context_columns = _module.context_columns if _module else None
title_shares = _module.title_shares if _module else None
window_mean = _module.window_mean if _module else None
fill_features = _module.fill_features if _module else None
