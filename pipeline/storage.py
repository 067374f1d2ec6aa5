"""Paths on any filesystem: local, file://, s3:// (s3a:// too), hdfs://, gs:// via pyarrow.fs, and
read-only http(s)://. Outputs are written under a temporary name and renamed, so a reader never sees
a half-written file."""
from __future__ import annotations

import glob as globlib
import gzip
import os
import urllib.request
import uuid
from typing import BinaryIO, Iterable

import pyarrow as pa
import pyarrow.fs as pafs

_REMOTE = ("s3://", "s3a://", "s3n://", "hdfs://", "viewfs://", "gs://", "gcs://", "abfs://", "abfss://")


def is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _pyarrow_fs(path: str) -> tuple[pafs.FileSystem, str]:
    if path.startswith(("s3a://", "s3n://")):
        path = "s3://" + path.split("://", 1)[1]
    if path.startswith(_REMOTE) or path.startswith("s3://"):
        return pafs.FileSystem.from_uri(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    return pafs.LocalFileSystem(), os.path.abspath(path)


def open_read(path: str) -> BinaryIO:
    if is_http(path):
        request = urllib.request.Request(path, headers={"User-Agent": "webweave/0.1"})
        return urllib.request.urlopen(request, timeout=60)
    fs, p = _pyarrow_fs(path)
    return fs.open_input_stream(p, compression=None)  # pyarrow would gunzip .gz itself


def open_random(path: str):
    """A seekable file, as parquet readers need."""
    if is_http(path):
        with open_read(path) as f:
            return pa.BufferReader(f.read())
    fs, p = _pyarrow_fs(path)
    return fs.open_input_file(p)


def read_lines(path: str) -> list[str]:
    with open_read(path) as raw:
        data = raw.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip() and not line.startswith("#")]


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def exists(path: str) -> bool:
    fs, p = _pyarrow_fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def list_files(directory: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files under `directory` (recursively) ending in one of `suffixes`, skipping any path part that
    starts with `_` or `.` (stage bookkeeping, temporary files)."""
    fs, p = _pyarrow_fs(directory)
    remote = "://" in directory and not directory.startswith("file://")
    scheme = directory.split("://", 1)[0]
    out = []
    for info in fs.get_file_info(pafs.FileSelector(p, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(p):].lstrip("/")
        if any(part[:1] in "_." for part in rel.split("/")) or not info.path.endswith(suffixes):
            continue
        out.append(f"{scheme}://{info.path}" if remote else info.path)
    return sorted(out)


def expand_inputs(items: Iterable[str], suffixes: tuple[str, ...]) -> list[str]:
    """--input items → a sorted, de-duplicated list of files: files, directories, globs, http(s) URLs,
    or a text file (.txt / .lst / .paths[.gz]) that lists any of those."""
    out: list[str] = []
    for item in items:
        if is_http(item) and not item.endswith((".txt", ".lst", ".paths", ".paths.gz")):
            out.append(item)
        elif item.endswith((".txt", ".lst", ".paths", ".paths.gz")):
            out.extend(expand_inputs(read_lines(item), suffixes))
        elif "://" not in item and any(ch in item for ch in "*?["):
            matches = sorted(globlib.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"--input {item!r} matches no file")
            out.extend(expand_inputs(matches, suffixes))
        else:
            fs, p = _pyarrow_fs(item)
            kind = fs.get_file_info(p).type
            if kind == pafs.FileType.Directory:
                out.extend(list_files(item, suffixes))
            elif kind == pafs.FileType.File:
                out.append(item if "://" in item else os.path.abspath(item))
            else:
                raise FileNotFoundError(f"--input {item!r} does not exist")
    return sorted(set(out))


def makedirs(path: str) -> None:
    fs, p = _pyarrow_fs(path)
    fs.create_dir(p, recursive=True)


def temporary_name(path: str) -> str:
    """A sibling of `path` that listings skip (leading dot) and that no other writer uses."""
    head, _, tail = path.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{tail}"


def commit(tmp: str, final: str) -> None:
    fs, src = _pyarrow_fs(tmp)
    _, dst = _pyarrow_fs(final)
    fs.move(src, dst)


def remove(path: str) -> None:
    fs, p = _pyarrow_fs(path)
    if fs.get_file_info(p).type != pafs.FileType.NotFound:
        fs.delete_file(p)


def open_write(path: str) -> BinaryIO:
    """A new file, its folder created if needed (object stores have no folders; a no-op there)."""
    fs, p = _pyarrow_fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    return fs.open_output_stream(p, compression=None)


def write_bytes_atomic(path: str, data: bytes) -> None:
    tmp = temporary_name(path)
    with open_write(tmp) as out:
        out.write(data)
    commit(tmp, path)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def size(path: str) -> int:
    fs, p = _pyarrow_fs(path)
    return fs.get_file_info(p).size or 0


def remove_tree(path: str) -> None:
    fs, p = _pyarrow_fs(path)
    if fs.get_file_info(p).type == pafs.FileType.Directory:
        fs.delete_dir(p)
