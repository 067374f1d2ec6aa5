"""dist/webweave.zip: the project's code for `spark-submit --py-files` on a cluster, and beside it
dist/_compiled.so, the compiled walk for `--files`, where it is built (`make dist`).

    python -m tools.dist [PATH]
"""
from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["pipeline", "filters", "jobs", "configs"]  # what a stage's executors import


def build_zip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for package in PACKAGES:
            for f in sorted((ROOT / package).rglob("*")):
                # A compiled module cannot be imported from a zip: compiled_walk ships it on its own.
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".so":
                    z.write(f, f.relative_to(ROOT))
    return path


def compiled_walk(folder: Path) -> Path:
    """folder/_compiled.so: the built, current compiled extractor copied under a name any CPython of
    its version and platform imports (pipeline.extract.compiled raises ImportError, saying why, where it is
    missing or stale). The executors' Python, platform and selectolax must be the ones it was built
    with: pipeline.extract.compiled refuses it otherwise, and says why, and their extract tasks fail."""
    from pipeline.extract import compiled

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "_compiled.so"
    shutil.copyfile(compiled.module_file, target)
    return target


if __name__ == "__main__":
    zip_path = build_zip(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/webweave.zip"))
    print(zip_path)
    print(compiled_walk(zip_path.parent))
