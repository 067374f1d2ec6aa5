"""The package's compiled extractor (pipeline/extract/_compiled_*.pyx: the walk, the block features, the
text helpers), built by `pip install .` and `pip install -e .` (so by `make setup`); everything else
about the package is in pyproject.toml.

The walk reads lexbor's structs, so it compiles against the headers of the very selectolax version
pyproject.toml pins. selectolax's wheels ship no headers: they come from that version's source
distribution on PyPI, fetched once into build/compiled/. A build that cannot compile stops the
install and says what is missing; there is no slower fallback to run instead.
"""
import hashlib
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

BUILD = Path("build") / "compiled"
FOLDER = Path("pipeline") / "extract"
MODULES = ("_compiled_walk", "_compiled_features", "_compiled_text")
SHARED = FOLDER / "_compiled_shared.pxd"


def pinned_selectolax() -> str:
    """The exact selectolax version pyproject.toml pins, for the build and for the run alike: the one
    whose .pxd files the walk is compiled with and whose structs it reads."""
    import selectolax

    project = tomllib.loads(Path("pyproject.toml").read_text())
    pins = {d.replace(" ", "").split("==", 1)[1] for d in
            project["project"]["dependencies"] + project["build-system"]["requires"]
            if d.replace(" ", "").startswith("selectolax==")}
    if len(pins) != 1 or pins != {selectolax.__version__}:
        raise SystemExit(f"pyproject.toml must pin one exact selectolax in dependencies and build-system.requires "
                         f"(pins {sorted(pins)}, building with {selectolax.__version__})")
    return selectolax.__version__


def lexbor_headers(version: str) -> Path:
    """build/compiled/selectolax-VERSION/lexbor/source: the headers only, from the sdist, fetched once."""
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


class BuildCompiledExtractor(build_ext):
    def run(self):
        for extension in self.extensions:
            extension.include_dirs.append(str(lexbor_headers(VERSION)))
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - distutils raises a family of compile, link and platform errors
            raise SystemExit(
                f"webweave: the compiled extractor (pipeline/extract/_compiled_*.pyx) did not build: {exc}\n"
                "It needs a C compiler and Python's C headers (Debian: apt-get install gcc python3-dev); "
                "extraction has no other implementation.") from exc


VERSION = pinned_selectolax()


def source_digest(module: str) -> str:
    """What pipeline/extract/compiled.py compares a built module against: its .pyx and the shared .pxd."""
    return hashlib.sha256((FOLDER / f"{module}.pyx").read_bytes() + SHARED.read_bytes()).hexdigest()[:16]


EXTENSIONS = [Extension(f"pipeline.extract.{module}", [str(FOLDER / f"{module}.pyx")],
                        define_macros=[("SELECTOLAX_BUILT_AGAINST", f'"{VERSION}"'),
                                       ("COMPILED_SOURCE", f'"{source_digest(module)}"')])
              for module in MODULES]

setup(ext_modules=cythonize(EXTENSIONS, build_dir=str(BUILD / "c"), quiet=True),
      cmdclass={"build_ext": BuildCompiledExtractor})
