"""The compiled extractor, loaded and checked: three modules that `pip install .` builds (setup.py), and
importing this module fails, saying why, where one is missing, built against another selectolax or
older than its source. There is no other implementation to fall back to.

_compiled_walk.pyx      `walk_blocks`, the walk itself; `head_elements`, the page head in one pass;
                        `one_copy`, a block's text glued to itself cut to one copy (and its link characters)
_compiled_features.pyx  `block_features`, `text_counts`, and the model's steps around its matrix
                        products: `score_features`, `page_threshold`, `keep_blocks`
_compiled_text.pyx      `valid_utf8` (without making the text), `is_own_nfc` (by the characters
                        alone), `collapse_blank_lines`
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib
import pkgutil

import selectolax
import selectolax.lexbor

MODULES = ("_compiled_walk", "_compiled_features", "_compiled_text")
_REBUILD = "pip install -e . (make compiled) rebuilds it; on a cluster, ship the dist/_compiled_*.so of make dist"


def _source_digest(name: str) -> str | None:
    # Read through the package loader: in the --py-files zip the source is no file of its own.
    try:
        source = pkgutil.get_data("pipeline.extract", f"{name}.pyx") + pkgutil.get_data(
            "pipeline.extract", "_compiled_shared.pxd")
    except OSError:  # an installed copy without its source: nothing to compare
        return None
    return hashlib.sha256(source).hexdigest()[:16]


def _load(name: str):
    """The module built beside this file by the install, or shipped as a plain NAME.so, which a zip cannot
    hold: spark-submit --files puts it in the executors' working directory, where PySpark's workers
    import from (make dist)."""
    errors = []
    for location in (f"pipeline.extract.{name}", name):
        try:
            module = importlib.import_module(location)
            break
        except ImportError as exc:
            errors.append(f"{location}: {exc}")
    else:
        raise ImportError(f"the compiled extractor is not built ({'; '.join(errors)}); {_REBUILD}")
    digest = _source_digest(name)
    if digest is not None and digest != module.SOURCE_DIGEST:
        raise ImportError(f"{module.__file__} is older than pipeline/extract/{name}.pyx; {_REBUILD}")
    return module


# The walk calls lexbor functions that live in selectolax's own extension, which Python loaded
# privately: load it again into the global namespace so those calls resolve.
ctypes.CDLL(selectolax.lexbor.__file__, mode=ctypes.RTLD_GLOBAL)
_walk, _features, _text = (_load(name) for name in MODULES)
if _walk.SELECTOLAX_VERSION != selectolax.__version__:
    raise ImportError(f"the compiled walk was built against selectolax {_walk.SELECTOLAX_VERSION}, "
                      f"{selectolax.__version__} is installed; {_REBUILD}")
module_files = [m.__file__ for m in (_walk, _features, _text)]

walk_blocks, head_elements, one_copy = _walk.walk_blocks, _walk.head_elements, _walk.one_copy
block_features, text_counts = _features.block_features, _features.text_counts
score_features, page_threshold, keep_blocks = _features.score_features, _features.page_threshold, _features.keep_blocks
valid_utf8, is_own_nfc, collapse_blank_lines = _text.valid_utf8, _text.is_own_nfc, _text.collapse_blank_lines
