"""The images stage's pieces: the private-network guard, consent, every route of the loopback image
server, decoding under limits, perceptual hashes, evaluation images and the join into documents."""
import hashlib
import io
import socket
import threading
from collections import Counter

import pyarrow as pa
import pytest
from PIL import Image

from pipeline.config import load_config
from pipeline.images.checks import EvalImages, hamming, inspect_image, phash
from pipeline.images.download import download_reason
from pipeline.images.guard import AddressGuard, Refused, page_refuses, public_address
from pipeline.images.join import fetch_and_inspect, join_images
from pipeline.stats import UnitStats


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.9", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1",
                                     "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"])
def test_private_and_special_addresses_are_not_public(address):
    assert not public_address(address)


def test_public_addresses_are_public():
    # Classification only: nothing connects to these.
    assert public_address("93.184.216.34") and public_address("2606:4700::6810:85e5")


def test_guard_refuses_private_hosts_before_connecting_and_allowlist_is_exact():
    guard = AddressGuard(["127.0.0.1:8080"])
    with pytest.raises(Refused) as info:
        guard.check_url("http://127.0.0.2:8080/a.jpg")
    assert info.value.reason == "private_address"
    with pytest.raises(Refused):
        guard.check_url("http://127.0.0.1:8081/a.jpg")  # the allowlist names a port
    with pytest.raises(Refused):
        guard.check_url("http://2130706433/a.jpg")  # 127.0.0.1 written as one number
    with pytest.raises(Refused) as info:
        guard.check_url("file:///etc/passwd")
    assert info.value.reason == "bad_url"
    guard.check_url("http://127.0.0.1:8080/a.jpg")


def test_page_robots_meta_refuses_images():
    cfg = load_config().images
    assert page_refuses("noindex, noai", cfg) and page_refuses("NoImageAI", cfg)
    assert not page_refuses("index, follow", cfg) and not page_refuses(None, cfg)


def test_download_reasons():
    assert download_reason("HTTP Error 404: Not Found") == "http_404"
    assert download_reason("<urlopen error webweave refused (private_address): x>") == "private_address"
    assert download_reason("Use of image disallowed by X-Robots-Tag directive") == "x_robots_tag"
    assert download_reason("<urlopen error timed out>") == "timeout"
    assert download_reason("something new") == "download_error"


@pytest.fixture(scope="module")
def server(shared_data):
    from demo.image_server import ImageServer

    with ImageServer(slow_seconds=5) as s:
        yield s


@pytest.fixture()
def watched_private(server):
    """A listener on 127.0.0.2 at the server's port: it records any connection the guard lets through."""
    hits = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.2", server.port))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                hits.append(conn.getpeername())
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield hits
    stop.set()
    thread.join()
    listener.close()


ROUTES = {
    "/a/photo.jpg": ("ok", None),
    "/redirect/b/photo.jpg": ("ok", None),
    "/status/404/x.jpg": ("failed", "http_404"),
    "/status/500/x.jpg": ("failed", "http_500"),
    "/slow/x.jpg": ("failed", "timeout"),
    "/trickle/x.jpg": ("failed", "too_slow"),
    "/noai/x.jpg": ("refused", "x_robots_tag"),
    "/private/x.jpg": ("refused", "robots_txt"),
    "/redirect-private/x.jpg": ("refused", "private_address"),
    "/redirect-ftp/x.jpg": ("refused", "bad_url"),
    "/truncated/x.jpg": ("rejected", "corrupt"),
    "/bomb/x.gif": ("rejected", "decompression_bomb"),
    "/broken/x.png": ("rejected", "undecodable"),
}


def server_config(server, **extra):
    sets = [f"images.allow_hosts=['127.0.0.1:{server.port}']", "images.timeout=2", "images.retries=0",
            "images.max_seconds=3",
            "images.min_side=1", "images.min_aspect=0", "images.max_aspect=100"]
    return load_config(overrides=sets + [f"images.{k}={v}" for k, v in extra.items()]).images


def test_every_server_route_ends_in_its_status_and_reason(server, watched_private):
    urls = [server.url + r for r in ROUTES]
    rows = fetch_and_inspect(urls, server_config(server), EvalImages())
    got = {r["url"][len(server.url):]: (r["status"], r["reason"]) for r in rows}
    assert got == ROUTES
    assert watched_private == [], "the redirects to 127.0.0.2 must be refused before connecting"
    assert "/bomb/x.gif" in server.paths and "/robots.txt" in server.paths
    ok = next(r for r in rows if r["url"].endswith("/a/photo.jpg"))
    assert ok["sha256"] == hashlib.sha256(server.image_for("/a/photo.jpg").read_bytes()).hexdigest()
    assert Image.open(io.BytesIO(ok["bytes"])).size == (ok["width"], ok["height"])


def test_private_hosts_are_refused_without_a_request(server):
    rows = fetch_and_inspect(["http://127.0.0.3/x.jpg", "http://localhost:9/x.jpg"], server_config(server),
                             EvalImages())
    assert [r["reason"] for r in rows] == ["private_address", "private_address"]


def test_oversized_bodies_are_refused(server):
    rows = fetch_and_inspect([server.url + "/a/photo.jpg"], server_config(server, max_bytes=100), EvalImages())
    assert rows[0]["reason"] == "too_large"


@pytest.fixture(scope="module")
def cfg():
    return load_config().images


def test_hostile_files_get_reasons(shared_data, cfg):
    pillow = shared_data / "images" / "pillow"
    reason = {name: inspect_image((pillow / name).read_bytes(), cfg, EvalImages())["reason"]
              for name in ["decompression_bomb.gif", "broken.png", "zero_width.gif", "chi.gif", "hopper.ico"]}
    assert reason == {"decompression_bomb.gif": "decompression_bomb", "broken.png": "undecodable",
                      "zero_width.gif": "undecodable", "chi.gif": "format", "hopper.ico": "format"}
    rocket = (shared_data / "images" / "skimage" / "rocket.jpg").read_bytes()
    assert inspect_image(rocket[: len(rocket) // 2], cfg, EvalImages())["reason"] == "corrupt"


def test_size_and_aspect_filters_use_real_photos(shared_data, cfg):
    photos = shared_data / "images" / "photos"
    verdict = {p.stem: inspect_image(p.read_bytes(), cfg, EvalImages())["reason"] for p in photos.glob("*.jpg")}
    assert verdict["123_456"] == "too_small"          # 123 px wide
    assert verdict["456_123"] == "too_small"
    assert verdict["208_495"] == "aspect_ratio"       # 0.42
    assert verdict["416_264"] is None and verdict["524_316"] is None


def test_exif_orientation_is_applied(shared_data, cfg):
    data = (shared_data / "images" / "pillow" / "hopper_orientation_6.jpg").read_bytes()
    raw = Image.open(io.BytesIO(data))
    row = inspect_image(data, load_config(overrides=["images.min_side=1"]).images, EvalImages())
    assert row["status"] == "ok" and (row["width"], row["height"]) == raw.size[::-1]
    stored = Image.open(io.BytesIO(row["bytes"]))
    assert stored.size == (row["width"], row["height"]) and stored.getexif().get(0x0112, 1) == 1
    assert row["bytes_sha256"] == hashlib.sha256(row["bytes"]).hexdigest() != row["sha256"]


def test_large_images_are_shrunk_in_their_own_format(shared_data):
    data = (shared_data / "images" / "skimage" / "hubble_deep_field.jpg").read_bytes()
    row = inspect_image(data, load_config(overrides=["images.resize_longest_side=300"]).images, EvalImages())
    stored = Image.open(io.BytesIO(row["bytes"]))
    assert row["status"] == "ok" and stored.format == "JPEG" and max(stored.size) == 300
    assert (row["width"], row["height"]) == Image.open(io.BytesIO(data)).size


def test_phash_is_stable_under_resizing_and_tells_images_apart(shared_data):
    a = Image.open(shared_data / "images" / "skimage" / "chelsea.png")
    b = Image.open(shared_data / "images" / "skimage" / "astronaut.png")
    ha, hb = phash(a), phash(b)
    small = phash(a.resize((a.width // 3, a.height // 3)))
    assert int(hamming(pa.array([ha]).to_numpy(), small)[0]) <= 4
    assert int(hamming(pa.array([ha]).to_numpy(), hb)[0]) > 16


def test_evaluation_images_are_removed_exactly_and_nearly(shared_data, cfg):
    path = shared_data / "images" / "photos" / "416_264.jpg"
    data = path.read_bytes()
    image = Image.open(path)
    table = pa.table({"set": ["coco"], "item": ["42"], "sha256": [hashlib.sha256(data).hexdigest()],
                      "phash": [phash(image)]})
    evals = EvalImages(table, 4)
    assert inspect_image(data, cfg, evals)["reason"] == "eval_image_exact"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=60)  # the same picture, other bytes
    row = inspect_image(out.getvalue(), cfg, evals)
    assert (row["reason"], row["error"]) == ("eval_image_near", "coco:42")


def info(status="ok", reason=None):
    return {"status": status, "reason": reason, "sha256": "s", "phash": 1, "width": 200, "height": 200,
            "format": "jpeg", "error": None, "bytes_sha256": "b", "num_bytes": 10, "nsfw": 0.01}


def test_join_removes_failed_positions_merges_texts_and_counts(cfg):
    row = {"doc_id": "d", "meta_robots": None, "texts": ["a", None, "b", None, "c", None],
           "images": [None, "u1", None, "u2", None, "u1"],
           "image_meta": [None, {"alt": "x"}, None, {"alt": "y"}, None, {"alt": "x"}]}
    stats = UnitStats()
    nodes, tally = stats.nodes, stats.tally
    out, reason, _ = join_images(row, {"u1": info(), "u2": info("failed", "http_404")}, cfg, stats)
    assert reason is None
    assert out["texts"] == ["a", None, "b\n\nc"] and out["images"] == [None, "u1", None]
    assert out["image_info"][1]["sha256"] == "s" and out["image_info"][0] is None
    assert nodes == {"image_http_404": 1, "image_repeated_in_document": 1}
    assert tally["images_in"] == 3 == tally["images_kept"] + sum(nodes.values())


def test_join_rejects_documents_by_image_count_and_page_consent(cfg):
    row = {"doc_id": "d", "meta_robots": "noai", "texts": ["a", None], "images": [None, "u1"],
           "image_meta": [None, {"alt": None}]}
    stats = UnitStats()
    out, reason, _ = join_images(row, {"u1": info()}, cfg, stats)
    assert reason == "too_few_images" and stats.nodes == {"image_page_robots": 1}
    many = {"doc_id": "m", "meta_robots": None, "texts": ["t"] + [None] * 31, "images": [None] + [f"u{i}" for i in range(31)],
            "image_meta": [None] + [{"alt": None}] * 31}
    _, reason, _ = join_images(many, {f"u{i}": info() for i in range(31)}, cfg, UnitStats())
    assert reason == "too_many_images"


@pytest.mark.parametrize("status, allowed", [(404, True), (403, True), (503, False)])
def test_robots_txt_errors_follow_rfc_9309(shared_data, status, allowed):
    from demo.image_server import ImageServer
    from pipeline.images.guard import RobotsCache, guarded_opener

    with ImageServer(robots_status=status) as s:
        robots = RobotsCache(guarded_opener(AddressGuard([f"127.0.0.1:{s.port}"]), 10_000), "webweave", 2)
        assert robots.allowed(f"{s.url}/private/a.jpg") is allowed
        assert robots.allowed(f"{s.url}/b.jpg") is allowed
        assert s.paths == ["/robots.txt"], "fetched once per host"


def test_no_cut_or_corrupted_file_escapes_as_an_exception(shared_data):
    import random

    cfg = load_config(overrides=["images.min_side=1", "images.min_aspect=0", "images.max_aspect=1000"]).images
    rng = random.Random(7)
    seen = Counter()
    for path in sorted((shared_data / "images" / "pillow").glob("*.*")):
        data = path.read_bytes()
        variants = [data[: int(len(data) * share)] for share in (0.05, 0.5, 0.95)]
        for _ in range(3):
            flipped = bytearray(data)
            for _ in range(5):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            variants.append(bytes(flipped))
        for variant in variants:
            row = inspect_image(variant, cfg, EvalImages())
            assert row["status"] in ("ok", "rejected")
            seen[row["reason"]] += 1
    assert seen["corrupt"] and seen["undecodable"]
