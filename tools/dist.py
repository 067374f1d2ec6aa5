"""dist/webweave.zip: the project's code for `spark-submit --py-files` on a cluster, and beside it
dist/_compiled_*.so, the compiled extractor's modules for `--files` (`make dist`).

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
                # A compiled module cannot be imported from a zip: compiled_modules ships them on their own.
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".so":
                    z.write(f, f.relative_to(ROOT))
    return path


def compiled_modules(folder: Path) -> list[Path]:
    """folder/_compiled_*.so: the built, current compiled extractor's modules, copied under names any
    CPython of their version and platform imports. The executors' Python, platform and selectolax must
    be the ones they were built with: pipeline.extract.compiled refuses them otherwise, says why, and the
    extract tasks fail."""
    from pipeline.extract import compiled

    folder.mkdir(parents=True, exist_ok=True)
    targets = []
    for name, built in zip(compiled.MODULES, compiled.module_files):
        targets.append(folder / f"{name}.so")
        shutil.copyfile(built, targets[-1])
    return targets


if __name__ == "__main__":
    zip_path = build_zip(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/webweave.zip"))
    print(zip_path)
    print(*compiled_modules(zip_path.parent), sep="\n")
