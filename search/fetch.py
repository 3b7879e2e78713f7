"""A careful HTTP client for media and pages named by users, crawls and manifests.

URLs come from untrusted places (web pages, manifests, API calls), so fetching one must not
become a way into the host's network (SSRF): every TCP connection, including each redirect hop,
is made to an address that was resolved and checked right there, so a DNS answer cannot change
between the check and the connect. Loopback, private, link-local, reserved and other
non-global addresses are refused, also when an IPv6 address only wraps one (IPv4-mapped,
IPv4-compatible, NAT64, 6to4, Teredo), unless ``settings.ingest.allow_hosts`` names the host or
address, best with its port (``127.0.0.1:9000``; a bare ``localhost`` allows every port on it).

Every fetch has a total deadline, retries and redirects included, enforced on each socket
operation (connect, TLS, every read and write), so a server that drips one byte at a time cannot
hold a thread past it: pages and manifests get ``page_deadline``, media downloads
``download_deadline``, and a caller may open a shorter ``fetch_deadline`` around several fetches
(a search with image URLs shares one). A fetcher also caps how many fetches it runs at once, in
all and per host; a fetch over the cap waits for a slot, up to ``fetch_slot_wait``.

Transient failures (timeouts, resets, 429, 5xx) are retried with jittered exponential backoff;
permanent ones (404, blocked address, too large) fail at once. The type of what came back is
decided from its bytes, not from the server's Content-Type or the URL's extension.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

import httpcore
import httpx

from search.errors import BlockedAddress, FetchError, FetchTimeout, TooLarge
from search.media.sniff import SNIFF_BYTES, Sniffed, sniff
from search.settings import IngestSettings, split_host_port

_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0
_RETRY_AFTER_CAP_S = 30.0
_CHUNK = 64 * 1024
_NETWORK_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpx.TransportError)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A response body held in memory (pages, robots.txt, manifests, images)."""

    url: str  # the final URL, after redirects
    data: bytes
    sniffed: Sniffed  # what the bytes are
    declared_type: str | None  # the server's Content-Type, for information only
    redirects: tuple[str, ...] = ()  # the URLs that redirected, in order

    @property
    def content_type(self) -> str:
        return self.sniffed.mime

    def text(self) -> str:
        """The body as text, trusting a declared charset and falling back to UTF-8."""
        charset = _charset(self.declared_type) or "utf-8"
        try:
            return self.data.decode(charset, errors="replace")
        except LookupError:
            return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Downloaded:
    """A response body streamed to a file (videos, and images kept for serving)."""

    url: str
    path: Path
    size: int
    sha256: str
    sniffed: Sniffed
    declared_type: str | None
    redirects: tuple[str, ...] = ()

    @property
    def content_type(self) -> str:
        return self.sniffed.mime


# -- the total deadline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    at: float  # time.monotonic() by which everything must be done
    seconds: float  # the budget it was opened with, for messages


_deadline: ContextVar[_Deadline | None] = ContextVar("mmsearch_fetch_deadline", default=None)


@contextmanager
def fetch_deadline(seconds: float) -> Iterator[None]:
    """Every fetch made inside this block (in this thread), retries and redirects included,
    ends by ``seconds`` from now; a deadline already open that ends sooner is kept."""
    opened = _Deadline(time.monotonic() + seconds, seconds)
    current = _deadline.get()
    token = _deadline.set(current if current is not None and current.at <= opened.at else opened)
    try:
        yield
    finally:
        _deadline.reset(token)


class _DeadlinePassed(Exception):
    """Internal: the open deadline passed; raised from socket operations, turned into FetchTimeout."""


def _remaining() -> float | None:
    current = _deadline.get()
    return None if current is None else current.at - time.monotonic()


def _bounded(timeout: float | None) -> float | None:
    """A socket timeout that also ends at the deadline; raises once the deadline has passed."""
    remaining = _remaining()
    if remaining is None:
        return timeout
    if remaining <= 0:
        raise _DeadlinePassed()
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation is bounded by the deadline open in the calling thread.

    The deadline is read per operation, not stored, because a pooled keep-alive connection serves
    later fetches with their own deadlines.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


# -- concurrency caps -------------------------------------------------------------------------------


class FetchSlots:
    """Fetches in flight, capped in all and per key (a remote host, a client address).

    ``acquire`` waits at most ``timeout`` seconds for a slot (0: answer at once) and says whether
    it got one; every successful acquire is paired with a ``release`` of the same key.
    """

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._changed = threading.Condition()
        self._in_flight = 0
        self._by_key: dict[str, int] = {}

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def acquire(self, key: str, timeout: float = 0.0) -> bool:
        give_up = time.monotonic() + timeout
        with self._changed:
            while self._in_flight >= self.total or self._by_key.get(key, 0) >= self.per_key:
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            self._in_flight += 1
            self._by_key[key] = self._by_key.get(key, 0) + 1
            return True

    def release(self, key: str) -> None:
        with self._changed:
            self._in_flight -= 1
            left = self._by_key.pop(key) - 1
            if left:
                self._by_key[key] = left
            self._changed.notify_all()


# -- the address guard ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One ``allow_hosts`` entry: a host name or an address/network, with or without a port."""

    name: str | None  # a host name, compared with the URL's host
    network: IpNetwork | None  # an address or network, compared with the resolved addresses
    port: int | None  # None: every port

    @classmethod
    def parse(cls, entry: str) -> AllowEntry:
        host, port = split_host_port(entry)
        try:
            return cls(None, ipaddress.ip_network(host, strict=False), port)
        except ValueError:
            return cls(host, None, port)

    def allows_name(self, name: str, port: int) -> bool:
        return self.name == name and self.port in (None, port)

    def allows_address(self, ip: IpAddress, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        candidates = [ip] + ([ip.ipv4_mapped] if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else [])
        return any(c.version == self.network.version and c in self.network for c in candidates)


class AddressPolicy:
    """Which hosts, addresses and ports a fetch may connect to."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self.entries = [AllowEntry.parse(entry) for entry in allow_hosts]

    def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses; raise BlockedAddress if any is forbidden.

        One forbidden address is enough to refuse: a name that resolves to both a public and a
        private address is the classic DNS-rebinding setup.
        """
        name = host.lower().strip("[]").rstrip(".")
        addresses = _resolve(name, port)
        if any(entry.allows_name(name, port) for entry in self.entries):
            return addresses
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if is_forbidden(ip) and not any(entry.allows_address(ip, port) for entry in self.entries):
                where = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
                raise BlockedAddress(
                    f"refusing to fetch from {host}: it resolves to {ip}, a {_kind_of(ip)} address "
                    f"(add {where} to MMSEARCH_INGEST__ALLOW_HOSTS to allow it)"
                )
        return addresses


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use, never global
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), ::1 and :: included
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the only IPv6 space allocated for the Internet
_NOT_GLOBAL_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "2001::/32",  # Teredo (also refused by is_global; explicit because it wraps IPv4)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637), newer than some Pythons' tables
    )
)


def embedded_ipv4(ip: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if it is one of those."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_forbidden(ip: IpAddress) -> bool:
    """True for any address that is not globally routable unicast, in whatever form it comes.

    An IPv6 address that wraps an IPv4 one (``::ffff:127.0.0.1``, ``64:ff9b::7f00:1``,
    ``2002:7f00:1::``) is judged by the IPv4 address it reaches; IPv4-compatible, local-use
    NAT64 and Teredo addresses and anything outside 2000::/3 are refused outright.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return not ip.is_global or ip.is_multicast
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_forbidden(inner)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64_LOCAL or ip.teredo is not None:
        return True
    if ip not in _GLOBAL_UNICAST or any(ip in net for net in _NOT_GLOBAL_V6):
        return True
    return not ip.is_global or ip.is_multicast


def _kind_of(ip: IpAddress) -> str:
    for attribute in ("is_loopback", "is_link_local", "is_private", "is_multicast", "is_reserved"):
        if getattr(ip, attribute):
            return attribute.removeprefix("is_").replace("_", "-")
    return "non-public"


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        transient = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11))
        raise FetchError(f"cannot resolve host {host}: {exc.strerror}", transient=transient) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError(f"host {host} has no addresses", transient=False)
    return addresses


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy approved, resolved at connect time."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for address in self.policy.resolve(host, port):
            try:
                stream = super().connect_tcp(address, port, _bounded(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream)
        assert last_error is not None
        raise last_error


class _GuardedTransport(httpx.BaseTransport):
    """httpx transport over an httpcore pool that uses the guarded network backend.

    TLS still verifies the certificate against the URL's host name: httpcore passes the origin
    host as the SNI/verification name, whatever address the socket connected to.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=32,
            max_keepalive_connections=8,
            network_backend=_GuardedBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs tens of milliseconds,
    too much to pay again for every search that names an image URL (contexts are thread-safe)."""
    return httpx.create_ssl_context()


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


# -- the fetcher ------------------------------------------------------------------------------------


class Fetcher:
    """GET with guard, deadline, retries, size cap and redirect checks. Thread-safe; close when done."""

    def __init__(self, settings: IngestSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_hosts)
        self.slots = FetchSlots(settings.max_concurrent_fetches, settings.max_fetches_per_host)
        self._sleep = sleep
        self._client = httpx.Client(
            transport=_GuardedTransport(self.policy),
            timeout=httpx.Timeout(settings.http_timeout),
            headers={"User-Agent": settings.user_agent},
            follow_redirects=False,  # each hop is checked here, see _open_final
            trust_env=False,  # an environment proxy would bypass the address guard
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(self, url: str, *, max_bytes: int | None = None, deadline: float | None = None) -> Fetched:
        """The whole body in memory within ``deadline`` seconds (default ``page_deadline``);
        raise FetchError, FetchTimeout, BlockedAddress or TooLarge."""
        limit = max_bytes or self.settings.max_download_bytes

        def attempt() -> Fetched:
            with self._open_final(url) as (response, hops):
                data = b"".join(_capped(response, limit, url))
                declared = response.headers.get("content-type")
                return Fetched(str(response.url), data, _content_type(data, declared), declared, hops)

        with self._bounded(url, deadline or self.settings.page_deadline):
            return self._with_retries(url, attempt)

    def download(self, url: str, dest: Path, *, max_bytes: int | None = None, deadline: float | None = None) -> Downloaded:
        """Stream the body to ``dest`` (written atomically), hashing it on the way, within
        ``deadline`` seconds (default ``download_deadline``)."""
        limit = max_bytes or self.settings.max_download_bytes
        dest.parent.mkdir(parents=True, exist_ok=True)

        def attempt() -> Downloaded:
            with self._open_final(url) as (response, hops), _atomic_file(dest) as out:
                digest, size, head = hashlib.sha256(), 0, b""
                for chunk in _capped(response, limit, url):
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                declared = response.headers.get("content-type")
                sniffed = _content_type(head, declared)
                return Downloaded(str(response.url), dest, size, digest.hexdigest(), sniffed, declared, hops)

        with self._bounded(url, deadline or self.settings.download_deadline):
            return self._with_retries(url, attempt)

    # -- internals ------------------------------------------------------------------------------

    @contextmanager
    def _bounded(self, url: str, seconds: float) -> Iterator[None]:
        """Hold a slot (waiting a bounded time for one) and run under the deadline."""
        host = _host_of(url)
        wait = self.settings.fetch_slot_wait
        remaining = _remaining()
        if remaining is not None:
            wait = max(0.0, min(wait, remaining))
        if not self.slots.acquire(host, timeout=wait):
            raise FetchError(
                f"not fetching {url}: {self.slots.total} fetches in flight already "
                f"(at most {self.slots.per_key} per host); no slot came free within {wait:g} s",
                transient=True,
            )
        try:
            with fetch_deadline(seconds):
                try:
                    yield
                except _DeadlinePassed as exc:
                    budget = _deadline.get()
                    limit = budget.seconds if budget is not None else seconds
                    raise FetchTimeout(
                        f"{url} did not arrive within {limit:g} s (the time allowed for the whole fetch, "
                        "retries included): the server is too slow or stalled"
                    ) from exc
        finally:
            self.slots.release(host)

    def _with_retries(self, url: str, attempt: Callable[[], Any]) -> Any:
        tries = self.settings.http_retries + 1
        for number in range(tries):
            try:
                return attempt()
            except (_Retryable, FetchError) as exc:
                if isinstance(exc, FetchError) and not exc.transient:
                    raise
                remaining = _remaining()
                if remaining is not None and remaining <= 0:
                    raise _DeadlinePassed() from exc
                if number + 1 >= tries:
                    raise FetchError(f"{exc} (gave up after {tries} attempts)", transient=True) from exc
                wait = getattr(exc, "retry_after", None)
                wait = wait if wait is not None else _backoff(number)
                if remaining is not None and wait >= remaining:
                    raise _DeadlinePassed() from exc  # the next attempt could not start in time
                self._sleep(wait)
        raise AssertionError("unreachable")

    @contextmanager
    def _open_final(self, url: str) -> Iterator[tuple[httpx.Response, tuple[str, ...]]]:
        """Follow redirects by hand, checking every hop, and yield the final streamed response."""
        current, hops = _checked_url(url), list[str]()
        while True:
            with self._send(current) as response:
                if response.status_code not in _REDIRECTS:
                    _raise_for_status(response, current)
                    yield response, tuple(hops)
                    return
                target = _redirect_target(response, current)
            hops.append(str(current))
            if len(hops) > self.settings.max_redirects:
                raise FetchError(f"too many redirects (more than {self.settings.max_redirects}) from {url}")
            if str(target) in hops:
                raise FetchError(f"redirect loop: {' -> '.join(hops + [str(target)])}")
            current = target

    @contextmanager
    def _send(self, url: httpx.URL) -> Iterator[httpx.Response]:
        try:
            with self._client.stream("GET", url, timeout=self._timeout()) as response:
                yield response
        except FetchError:
            raise
        except _NETWORK_ERRORS as exc:
            raise _Retryable(f"network error fetching {url}: {_describe(exc)}") from exc

    def _timeout(self) -> httpx.Timeout:
        """Per-operation timeouts, none longer than what is left of the deadline (the pool wait too)."""
        return httpx.Timeout(_bounded(self.settings.http_timeout))


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except (httpx.InvalidURL, TypeError):
        return url


class _Retryable(Exception):
    """Internal: a failure worth another attempt, with the server's requested wait if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _checked_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else url
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"not a valid URL: {url!r} ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs can be fetched, not {parsed.scheme or 'no scheme'}: {url}")
    if not parsed.host:
        raise FetchError(f"URL has no host: {url}")
    return parsed


def _redirect_target(response: httpx.Response, current: httpx.URL) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} redirect without a Location header from {current}")
    try:
        return _checked_url(current.join(location))
    except httpx.InvalidURL as exc:
        raise FetchError(f"bad redirect Location {location!r} from {current}") from exc


def _raise_for_status(response: httpx.Response, url: httpx.URL) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"HTTP {status} {response.reason_phrase} for {url}"
    if status in _TRANSIENT_STATUS:
        raise _Retryable(message, _retry_after(response.headers.get("retry-after")))
    raise FetchError(message, transient=False)


def _capped(response: httpx.Response, limit: int, url: str) -> Iterator[bytes]:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{url} is {int(declared):,} bytes, over the download limit of {limit:,}")
    received = 0
    try:
        for chunk in response.iter_bytes(_CHUNK):
            received += len(chunk)
            if received > limit:
                raise TooLarge(f"{url} is over the download limit of {limit:,} bytes")
            yield chunk
    except _NETWORK_ERRORS as exc:
        raise _Retryable(f"connection broke while reading {url}: {_describe(exc)}") from exc
    except httpx.DecodingError as exc:
        raise FetchError(f"{url} sent a body that cannot be decoded: {exc}") from exc


def _content_type(head: bytes, declared: str | None) -> Sniffed:
    """The bytes decide; a declared text/html only upgrades bytes that look like plain text."""
    found = sniff(head[:SNIFF_BYTES])
    if found.media_class in ("text", "other") and (declared or "").lower().startswith("text/html"):
        return Sniffed("text/html", "html")
    return found


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), _RETRY_AFTER_CAP_S)
    return None


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so many workers retrying do not stampede together."""
    return min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt) * (0.5 + random.random() / 2)


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip().strip('"')
    return None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@contextmanager
def _atomic_file(dest: Path) -> Iterator[IO[bytes]]:
    handle, tmp_name = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.replace(tmp_name, dest)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
