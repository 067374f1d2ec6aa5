"""dist/webweave.zip: the project's code for `spark-submit --py-files` on a cluster (`make dist`).

    python -m tools.dist [PATH]
"""
from __future__ import annotations

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
                # A compiled module cannot be imported from a zip: executors run the Python walk.
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".so":
                    z.write(f, f.relative_to(ROOT))
    return path


if __name__ == "__main__":
    print(build_zip(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/webweave.zip")))
