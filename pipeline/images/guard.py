"""Whom the images stage may ask, and for what: consent (a page's robots meta tag, robots.txt), and
the private-network guard, an opener that refuses private addresses at connection time (after DNS,
so a rebinding name cannot slip through), every scheme but http(s), and bodies over their budget.
A refused URL costs no request to its host."""
from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import urllib.robotparser

from pipeline.config import ImagesConfig

# ---------------------------------------------------------------- consent

def page_refuses(meta_robots: str | None, cfg: ImagesConfig) -> bool:
    """Whether a page's own <meta name="robots"> content ("noai, noimageai") refuses its images."""
    tokens = set(re.split(r"[\s,]+", (meta_robots or "").lower()))
    return bool(tokens & set(cfg.page_directives))


# ---------------------------------------------------------------- the private-network guard

class Refused(OSError):
    """A request webweave will not make; `reason` is its counted reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"webweave refused ({reason}): {detail}")
        self.reason = reason


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressGuard:
    """Resolves a host and refuses it unless every address is public or the host is allowlisted.
    Connections go to the addresses checked here, so a DNS answer cannot change between check and
    connect, and every redirect hop passes through the same check."""

    def __init__(self, allow_hosts=()):
        self.allow = {h.lower() for h in allow_hosts}

    def addresses(self, host: str, port: int) -> list[tuple]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused("dns_error", f"{host}: {exc}") from None
        if host.lower() in self.allow or f"{host.lower()}:{port}" in self.allow:
            return infos
        for *_, sockaddr in infos:
            if not public_address(sockaddr[0]):
                raise Refused("private_address", f"{host} resolves to {sockaddr[0]}")
        return infos

    def connect(self, host: str, port: int, timeout) -> socket.socket:
        error: OSError | None = None
        for family, type_, proto, _, sockaddr in self.addresses(host, port):
            sock = socket.socket(family, type_, proto)
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"no address for {host}")

    def check_url(self, url: str) -> None:
        """Raise Refused for a URL that must not be fetched at all."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused("bad_url", url)
        self.addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, guard: AddressGuard, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = guard

    def connect(self):
        self.sock = self.guard.connect(self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, guard: AddressGuard, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.guard = guard

    def connect(self):
        self.sock = self._context.wrap_socket(self.guard.connect(self.host, self.port, self.timeout),
                                              server_hostname=self.host)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: AddressGuard):
        super().__init__()
        self.guard = guard

    def http_open(self, req):
        return self.do_open(lambda host, **kw: _GuardedHTTPConnection(self.guard, host, **kw), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: AddressGuard):
        super().__init__()
        self.guard = guard

    def https_open(self, req):
        return self.do_open(lambda host, **kw: _GuardedHTTPSConnection(self.guard, host, **kw), req,
                            context=self._context)


class _BodyLimit(urllib.request.BaseHandler):
    """Bodies over `max_bytes` are refused, by Content-Length before reading or while reading, and so
    are bodies still arriving after `max_seconds`: a socket timeout bounds each wait, not a server
    that sends a byte every few seconds."""
    handler_order = 400
    CHUNK = 1 << 16

    def __init__(self, max_bytes: int, max_seconds: float):
        self.max_bytes, self.max_seconds = max_bytes, max_seconds

    def http_response(self, request, response):
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            response.close()
            raise Refused("too_large", f"Content-Length {length} > {self.max_bytes}")
        read, cap, deadline = response.read1, self.max_bytes, time.monotonic() + self.max_seconds

        def limited_read(amt=None):
            parts, size = [], 0
            limit = cap + 1 if amt is None else min(amt, cap + 1)
            while size < limit:
                if time.monotonic() > deadline:
                    raise Refused("too_slow", f"body still arriving after {self.max_seconds:g} s")
                part = read(min(self.CHUNK, limit - size))
                if not part:
                    break
                parts.append(part)
                size += len(part)
            if size > cap:
                raise Refused("too_large", f"body over {cap} bytes")
            return b"".join(parts)

        response.read = limited_read
        return response

    https_response = http_response


class _NoFTP(urllib.request.FTPHandler):
    def ftp_open(self, req):
        raise Refused("bad_url", f"{req.full_url}: only http and https are fetched")


class _NoFile(urllib.request.FileHandler):
    def file_open(self, req):
        raise Refused("bad_url", f"{req.full_url}: only http and https are fetched")


class _NoData(urllib.request.DataHandler):
    def data_open(self, req):
        raise Refused("bad_url", f"{req.full_url[:40]}: only http and https are fetched")


def guarded_opener(guard: AddressGuard, max_bytes: int, max_seconds: float = 60.0) -> urllib.request.OpenerDirector:
    """An opener that never connects to a private network and never reads an unbounded body.
    Proxies from the environment are ignored (a proxy would do the connecting for us, unchecked), and
    urllib's ftp:, file: and data: handlers are replaced by refusals: a redirect may point to ftp://."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _GuardedHTTPHandler(guard),
                                       _GuardedHTTPSHandler(guard), _NoFTP(), _NoFile(), _NoData(),
                                       _BodyLimit(max_bytes, max_seconds))


# ---------------------------------------------------------------- robots.txt

class RobotsCache:
    """robots.txt of each image host, fetched once. Per RFC 9309: 4xx means no rules; 5xx or an
    unreachable host means everything is disallowed (urllib's own parser reads 401/403 as a ban)."""

    def __init__(self, opener, user_agent: str, timeout: float):
        self.opener, self.user_agent, self.timeout = opener, user_agent, timeout
        self.rules: dict[str, urllib.robotparser.RobotFileParser | bool] = {}
        self.lock = threading.Lock()

    def _fetch(self, origin: str):
        try:
            with self.opener.open(urllib.request.Request(origin + "/robots.txt", headers={
                    "User-Agent": f"Mozilla/5.0 (compatible; {self.user_agent})"}), timeout=self.timeout) as r:
                text = r.read(512_000).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return 400 <= exc.code < 500  # True: no rules; False: all disallowed
        except (OSError, http.client.HTTPException):
            return False
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(text.splitlines())
        return parser

    def allowed(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            if origin not in self.rules:
                self.rules[origin] = self._fetch(origin)
            rules = self.rules[origin]
        return rules if isinstance(rules, bool) else rules.can_fetch(self.user_agent, url)


def precheck(urls: list[str], guard: AddressGuard, robots: RobotsCache | None, threads: int) -> dict[str, str | None]:
    """url → why it must not be requested (None: go ahead). Each origin is resolved and its robots.txt
    read once, origins in parallel: a unit's hosts cost one DNS lookup and one robots.txt each, not
    a serial wait per URL."""
    from multiprocessing.pool import ThreadPool

    by_origin: dict[str, list[str]] = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        by_origin.setdefault(f"{parts.scheme}://{parts.netloc}", []).append(url)

    def check(origin_urls: list[str]) -> dict[str, str | None]:
        try:
            guard.check_url(origin_urls[0])  # scheme and host are the origin's: one check for all
        except Refused as exc:
            return dict.fromkeys(origin_urls, str(exc))
        out: dict[str, str | None] = {}
        for url in origin_urls:
            allowed = robots is None or robots.allowed(url)
            out[url] = None if allowed else str(Refused(
                "robots_txt", f"robots.txt of {urllib.parse.urlsplit(url).netloc} disallows it"))
        return out

    verdicts: dict[str, str | None] = {}
    with ThreadPool(max(1, min(threads, len(by_origin)))) as pool:
        for part in pool.imap_unordered(check, by_origin.values()):
            verdicts.update(part)
    return verdicts
