"""The compiled walk (pipeline/_blockwalk.pyx), where it is built for the installed selectolax.

`walk_blocks` is None when it is not, and `unavailable` says why; pipeline.extract then runs its
Python loop, which gives the same blocks, about twice as slowly (`make blockwalk` builds it).
Its helpers (None likewise): `valid_utf8`, whether bytes decode as UTF-8, without making the text;
`is_own_nfc`, whether a text's characters alone show it is in NFC; `collapse_blank_lines`, the
blank-line regex of pipeline.extract in one pass;
`text_counts`, a block's characters by class; and what follows the walk on every page, each one call in
place of a few dozen small numpy steps: `block_features` (pipeline.blocks), `score_features`,
`page_threshold` and `keep_blocks` (pipeline.content_model). Each is tested equal, to the bit, to the
numpy code it stands in for.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib
import pkgutil

import selectolax
import selectolax.lexbor

# Where the compiled module is looked for: built beside this file (make blockwalk), or shipped beside
# the code as a plain _blockwalk.so, which a zip cannot hold: spark-submit --files dist/_blockwalk.so
# puts it in the executors' working directory, which PySpark's workers import from (make dist).
_LOCATIONS = ("pipeline._blockwalk", "_blockwalk")


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
    raise ImportError("; ".join(errors))


def _load():
    try:
        module = _import()
    except (ImportError, OSError) as exc:
        return None, f"the compiled walk is not built ({exc}); make blockwalk builds it"
    if module.SELECTOLAX_VERSION != selectolax.__version__:
        return None, (f"the compiled walk was built against selectolax {module.SELECTOLAX_VERSION}, "
                      f"{selectolax.__version__} is installed; make blockwalk rebuilds it")
    # Read through the package loader: in the --py-files zip the source is no file of its own.
    try:
        source = pkgutil.get_data("pipeline", "_blockwalk.pyx")
    except OSError:  # an installed copy without its source: nothing to compare
        source = None
    if source is not None and hashlib.sha256(source).hexdigest()[:16] != module.SOURCE_DIGEST:
        return None, "the compiled walk is older than pipeline/_blockwalk.pyx; make blockwalk rebuilds it"
    return module, None


_module, unavailable = _load()


def module_file() -> str | None:
    """The compiled module's file, where it loaded."""
    return _module.__file__ if _module else None


walk_blocks = _module.walk_blocks if _module else None
valid_utf8 = _module.valid_utf8 if _module else None
text_counts = _module.text_counts if _module else None
block_features = _module.block_features if _module else None
score_features = _module.score_features if _module else None
page_threshold = _module.page_threshold if _module else None
keep_blocks = _module.keep_blocks if _module else None
head_elements = _module.head_elements if _module else None
is_own_nfc = _module.is_own_nfc if _module else None
collapse_blank_lines = _module.collapse_blank_lines if _module else None
