"""The compiled extractor (pipeline/extract/_compiled.pyx), loaded and checked: `pip install .` builds it
(setup.py), and importing this module fails, saying why, where it is missing, built against another
selectolax or older than its source. There is no other implementation to fall back to.

What it holds: `walk_blocks`, the walk itself; `head_elements`, the page head's elements in one pass;
`valid_utf8`, whether bytes decode as UTF-8, without making the text; `is_own_nfc`, whether a text's
characters alone show it is in NFC; `collapse_blank_lines`, blank-line runs made one; and what follows
the walk on every page, each one call in place of a few dozen small numpy steps: `block_features`,
`score_features`, `page_threshold`, `keep_blocks`.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib
import pkgutil

import selectolax
import selectolax.lexbor

# Where the module is looked for: built beside this file by the install, or shipped beside the code as
# a plain _compiled.so, which a zip cannot hold: spark-submit --files dist/_compiled.so puts it in the
# executors' working directory, which PySpark's workers import from (make dist).
_LOCATIONS = ("pipeline.extract._compiled", "_compiled")
_REBUILD = "pip install -e . (make compiled) rebuilds it; on a cluster, ship the dist/_compiled.so of make dist"


def _import():
    # The module calls lexbor functions that live in selectolax's own extension, which Python loaded
    # privately: load it again into the global namespace so those calls resolve.
    ctypes.CDLL(selectolax.lexbor.__file__, mode=ctypes.RTLD_GLOBAL)
    errors = []
    for name in _LOCATIONS:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise ImportError(f"the compiled extractor is not built ({'; '.join(errors)}); {_REBUILD}")


def _load():
    module = _import()
    if module.SELECTOLAX_VERSION != selectolax.__version__:
        raise ImportError(f"the compiled extractor was built against selectolax {module.SELECTOLAX_VERSION}, "
                          f"{selectolax.__version__} is installed; {_REBUILD}")
    # Read through the package loader: in the --py-files zip the source is no file of its own.
    try:
        source = pkgutil.get_data("pipeline.extract", "_compiled.pyx")
    except OSError:  # an installed copy without its source: nothing to compare
        source = None
    if source is not None and hashlib.sha256(source).hexdigest()[:16] != module.SOURCE_DIGEST:
        raise ImportError(f"the compiled extractor is older than pipeline/extract/_compiled.pyx; {_REBUILD}")
    return module


_module = _load()
module_file = _module.__file__

walk_blocks = _module.walk_blocks
head_elements = _module.head_elements
valid_utf8 = _module.valid_utf8
is_own_nfc = _module.is_own_nfc
collapse_blank_lines = _module.collapse_blank_lines
text_counts = _module.text_counts
block_features = _module.block_features
score_features = _module.score_features
page_threshold = _module.page_threshold
keep_blocks = _module.keep_blocks
