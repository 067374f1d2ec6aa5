"""A loopback image server: the offline stand-in for the web in tests and `make demo`.

Any path answers one of the real images in ../shared/data/images, chosen by a hash of the path, so
every URL of a document gets the same image on every run. A few path prefixes answer the ways the
web fails instead:

    /status/404/…  /status/500/…   that HTTP status
    /slow/…                         the image, after `slow_seconds`
    /trickle/…                      the image, a few bytes at a time, each well within any timeout
    /noai/…                         the image with X-Robots-Tag: noai
    /private/…                      the image, but robots.txt disallows /private/ for webweave
    /redirect/…                     302 to the same path without the prefix (a redirect that is fine)
    /redirect-private/…             302 to 127.0.0.2 (a private address the guard must refuse)
    /redirect-ftp/…                 302 to ftp://127.0.0.2 (a scheme the guard must refuse)
    /truncated/…  /bomb/…  /broken/…  a real JPEG cut short, a decompression bomb, a broken PNG

    python -m demo.image_server [--port 8765]
"""
from __future__ import annotations

import argparse
import hashlib
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from demo.samples import SHARED_DATA

IMAGES = SHARED_DATA / "images"
# Real photos and test images that decode; the failure cases are served only on their own routes.
POOL = ["photos/*.jpg", "skimage/*.jpg", "skimage/*.png", "pillow/flower*.jpg", "pillow/flower*.webp",
        "pillow/hopper.png", "pillow/hopper_orientation_6.jpg", "pillow/pil_sample_*.jpg"]
SPECIAL = {"bomb": "pillow/decompression_bomb.gif", "broken": "pillow/broken.png"}
# A real photo cut short, large enough to pass the size filters, so only decoding can catch it.
TRUNCATED_FROM, TRUNCATED_SHARE = "skimage/rocket.jpg", 0.6
ROBOTS_TXT = b"User-agent: webweave\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"
TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif"}


def image_pool(root: Path = IMAGES) -> list[Path]:
    files = sorted({p for pattern in POOL for p in root.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no images under {root}: the image server needs ../shared/data/images")
    return files


class ImageServer:
    """`with ImageServer() as server:` serves on 127.0.0.1 at `server.url` until the block ends;
    `server.paths` lists the paths requested."""

    def __init__(self, port: int = 0, root: Path = IMAGES, slow_seconds: float = 3.0,
                 private_target: str = "http://127.0.0.2:{port}", robots_status: int = 200):
        self.pool = image_pool(root)
        self.root, self.slow_seconds, self.robots_status = root, slow_seconds, robots_status
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                server.paths.append(self.path)
                server.answer(self)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the downloader opens dozens of connections at once

        self.httpd = Server(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.private_target = private_target.format(port=self.port)
        self.thread: threading.Thread | None = None

    def image_for(self, path: str) -> Path:
        digest = hashlib.blake2b(path.encode(), digest_size=8).digest()
        return self.pool[int.from_bytes(digest, "big") % len(self.pool)]

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        first, _, rest = path.lstrip("/").partition("/")
        if path == "/robots.txt":
            body = ROBOTS_TXT if self.robots_status == 200 else b"robots.txt unavailable\n"
            return self.send(request, self.robots_status, body, "text/plain")
        if first == "status":
            code = int(rest.split("/", 1)[0]) if rest[:3].isdigit() else 404
            return self.send(request, code, b"no image here\n", "text/plain")
        if first == "redirect":
            return self.send(request, 302, b"", "text/plain", {"Location": "/" + rest})
        if first == "redirect-ftp":
            target = self.private_target.replace("http://", "ftp://", 1)
            return self.send(request, 302, b"", "text/plain", {"Location": f"{target}/{rest}"})
        if first == "redirect-private":
            return self.send(request, 302, b"", "text/plain", {"Location": f"{self.private_target}/{rest}"})
        if first == "truncated":
            data = (self.root / TRUNCATED_FROM).read_bytes()
            return self.send(request, 200, data[: int(len(data) * TRUNCATED_SHARE)], "image/jpeg")
        if first == "trickle":
            return self.trickle(request, self.image_for(path).read_bytes())
        if first in SPECIAL:
            file = self.root / SPECIAL[first]
            return self.send(request, 200, file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"))
        headers = {}
        if first == "slow":
            time.sleep(self.slow_seconds)
        elif first == "noai":
            headers["X-Robots-Tag"] = "noai"
        file = self.image_for(path)
        self.send(request, 200, file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"), headers)

    def trickle(self, request, body: bytes, step: int = 64, pause: float = 0.2) -> None:
        try:
            request.send_response(200)
            request.send_header("Content-Type", "image/jpeg")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            for i in range(0, len(body), step):
                request.wfile.write(body[i: i + step])
                request.wfile.flush()
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def send(request, code: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        try:
            request.send_response(code)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def start(self) -> "ImageServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="image-server", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ImageServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def localize(url: str, base: str) -> str:
    """The server's URL standing in for `url`: http://127.0.0.1:PORT/<host>/<path>."""
    parts = urllib.parse.urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def localize_docs(source: str, target: str, base: str) -> int:
    """Copy the docs parts of `source` to `target` with every image URL pointed at the server (the
    demo's offline web). Returns the number of image URLs rewritten."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline import storage

    rewritten = 0
    storage.makedirs(target)
    for path in storage.expand_inputs([source], (".parquet",)):
        table = pq.read_table(path)
        images = [[localize(u, base) if u is not None else None for u in row]
                  for row in table.column("images").to_pylist()]
        rewritten += sum(u is not None for row in images for u in row)
        column = pa.array(images, table.schema.field("images").type)
        table = table.set_column(table.schema.get_field_index("images"), "images", column)
        pq.write_table(table, storage.join(target, path.rsplit("/", 1)[-1]), compression="zstd")
    return rewritten


def main() -> None:
    parser = argparse.ArgumentParser(prog="demo.image_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with ImageServer(args.port) as server:
        print(f"serving {len(server.pool)} real images at {server.url} (Ctrl-C stops)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
