"""Build the compiled walk (pipeline/_blockwalk.pyx) in place: `make blockwalk`, run by `make setup`.

    python -m tools.build_blockwalk

The module reads lexbor's structs, so it compiles against the headers of the very selectolax version
installed: they come from that version's source distribution on PyPI (selectolax's wheels ship no
headers), downloaded once into build/. Needs Cython and a C compiler. Without the module extraction
runs the Python walk, which gives the same documents (pipeline/blockwalk.py says which one runs).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import selectolax

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "blockwalk"


def lexbor_headers(version: str) -> Path:
    """build/blockwalk/selectolax-VERSION/lexbor/source, the headers only, fetched once."""
    source = BUILD / f"selectolax-{version}" / "lexbor" / "source"
    if source.is_dir():
        return source
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--no-build-isolation", "-d", str(BUILD), f"selectolax=={version}"], check=True)
    archive = BUILD / f"selectolax-{version}.tar.gz"
    prefix = f"selectolax-{version}/lexbor/source/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.name.endswith(".h") and m.isfile()]
        tar.extractall(BUILD, members=members, filter="data")
    archive.unlink()
    return source


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build() -> Path:
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    version = selectolax.__version__
    headers = lexbor_headers(version).relative_to(ROOT)
    os.chdir(ROOT)  # relative paths keep build/ free of absolute-path mirrors
    extension = Extension("pipeline._blockwalk", ["pipeline/_blockwalk.pyx"], include_dirs=[str(headers)],
                          define_macros=[("SELECTOLAX_BUILT_AGAINST", f'"{version}"'),
                                         ("BLOCKWALK_SOURCE", f'"{source_digest(ROOT / "pipeline" / "_blockwalk.pyx")}"')])
    dist = Distribution({"ext_modules": cythonize([extension], build_dir="build/blockwalk/c", quiet=True)})
    cmd = dist.get_command_obj("build_ext")
    cmd.inplace, cmd.build_temp = True, "build/blockwalk/temp"
    dist.run_command("build_ext")
    return ROOT / cmd.get_ext_fullpath("pipeline._blockwalk")


if __name__ == "__main__":
    print(f"built {build()} against selectolax {selectolax.__version__}")
