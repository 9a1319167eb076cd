"""The custodian service's front door (``mpc.service.server``): TLS contexts, the plaintext rule,
the operator credential, connection and request limits, bounded logging.

- **TLS.** :func:`server_tls_context` (certificate, key, optional client CA: client certificates
  are then required); the client's side is ``mpc.wire.client_tls_context``. Plain ``ws://`` is
  for loopback only unless explicitly allowed (:func:`binds_loopback_only`,
  ``mpc.wire.check_service_url``).
- **Operator key.** :class:`OperatorKey` holds only the SHA-256 of the key and compares in
  constant time; configured as the key or as ``sha256:<hex>`` (:func:`load_operator_key`: a
  file or ``$PORTAL_MPC_OPERATOR_KEY``, never the command line).
- **Limits.** :class:`ServiceLimits`; :class:`TokenBuckets` (per IP, per client);
  :class:`ConnectionGate` with :class:`GatedSocket`: sockets over the per-address caps (IPv6:
  per /64 and per /56) are closed as they are accepted, before any TLS or WebSocket handshake.
  Near the total cap (sized from the descriptor limit, :func:`check_fd_budget`) the gate evicts
  the oldest socket that has not sent a valid first frame, from the address holding the most
  such sockets: a connection that sent one is never evicted, so a distributed flood of silent
  or slow connections cannot starve authenticated clients.
- **Logs.** :class:`BoundedLog`: at most N messages a minute (tracebacks included), then one
  "suppressed K" line; every message truncated. :class:`BudgetFilter` puts another library's
  logger (``websockets``) under such a budget.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import socket
import ssl
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpc.service import metrics
from mpc.wire import is_loopback_literal
from mpc.errors import ConfigInvalid, RateLimited

__all__ = [
    "OPERATOR_KEY_ENV",
    "MIN_OPERATOR_KEY_CHARS",
    "OperatorKey",
    "load_operator_key",
    "environment_operator_key",
    "server_tls_context",
    "binds_loopback_only",
    "ServiceLimits",
    "TokenBuckets",
    "ConnectionGate",
    "GatedSocket",
    "BoundedLog",
    "BudgetFilter",
    "peer_key",
    "prefix_key",
    "peer_common_name",
    "check_fd_budget",
]

OPERATOR_KEY_ENV = "PORTAL_MPC_OPERATOR_KEY"
MIN_OPERATOR_KEY_CHARS = 16
_HASH_PREFIX = "sha256:"
_MAX_PRESENTED_CHARS = 1024
FD_RESERVE = 64  # descriptors kept free for the database, the pool's pipes, logs and the listener
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
EVICTION_OVERDRAFT = 16  # descriptors of FD_RESERVE a socket that evicted may use while the evicted close
MAX_SOCKET_CAP = 65_536  # the socket cap sized from a huge descriptor limit stops here
PREFIX_SHARES = 2  # an IPv6 /56 may hold this many per-address (/64) shares of sockets
IPV6_PREFIX = 56


# --- the operator credential ------------------------------------------------------------------------
class OperatorKey:
    """The operator API key, kept as its SHA-256 only; :meth:`matches` compares in constant time."""

    __slots__ = ("_digest",)

    def __init__(self, digest: bytes) -> None:
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise ConfigInvalid("an operator key hash is 32 bytes (sha256)")
        self._digest = digest

    @classmethod
    def from_key(cls, key: str) -> OperatorKey:
        """From the key itself (at least ``MIN_OPERATOR_KEY_CHARS`` characters)."""
        if not isinstance(key, str) or len(key) < MIN_OPERATOR_KEY_CHARS:
            raise ConfigInvalid(f"the operator key must have at least {MIN_OPERATOR_KEY_CHARS} characters")
        return cls(hashlib.sha256(key.encode("utf-8")).digest())

    @classmethod
    def parse(cls, text: str) -> OperatorKey:
        """From configuration text: ``sha256:<64 hex digits>`` (the key's hash) or the key."""
        text = text.strip()
        if text.startswith(_HASH_PREFIX):
            digits = text[len(_HASH_PREFIX):]
            try:
                digest = bytes.fromhex(digits)
            except ValueError:
                raise ConfigInvalid("an operator key hash is 'sha256:' and 64 hex digits") from None
            if len(digits) != 64:
                raise ConfigInvalid("an operator key hash is 'sha256:' and 64 hex digits")
            return cls(digest)
        return cls.from_key(text)

    @staticmethod
    def hash_of(key: str) -> str:
        """The configuration form ``sha256:<hex>`` of ``key`` (for a hash-only configuration)."""
        return _HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()

    def matches(self, presented: Any) -> bool:
        """Whether ``presented`` is the key (constant time in the key; False for a non-string)."""
        if not isinstance(presented, str) or len(presented) > _MAX_PRESENTED_CHARS:
            return False
        try:
            digest = hashlib.sha256(presented.encode("utf-8")).digest()
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(digest, self._digest)

    def __repr__(self) -> str:
        return "OperatorKey(<redacted>)"


def load_operator_key(path: str | Path | None, env_value: str | None) -> OperatorKey | None:
    """The operator key from a file (``--operator-key-file``) or the environment's value
    (``$PORTAL_MPC_OPERATOR_KEY``); None if neither is given; both at once is refused."""
    if path is not None and env_value:
        raise ConfigInvalid(f"give the operator key in a file or in ${OPERATOR_KEY_ENV}, not both")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise ConfigInvalid(f"cannot read the operator key file {path}") from None
        return OperatorKey.parse(text)
    if env_value:
        return OperatorKey.parse(env_value)
    return None


# --- TLS and the plaintext rule ---------------------------------------------------------------------
def server_tls_context(cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``client_ca`` a client certificate signed by it is required.
    TLS 1.2 offers only forward-secret AEAD suites (``TLS12_CIPHERS``: ECDHE with AES-GCM or
    ChaCha20-Poly1305, RFC 5288 / RFC 7905), no CBC; TLS 1.3's suites are all AEAD (RFC 8446)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError):
        raise ConfigInvalid(f"cannot load the TLS certificate {cert} with its key {key}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError):
            raise ConfigInvalid(f"cannot load the client CA {client_ca}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def binds_loopback_only(host: str | None) -> bool:
    """Whether every address ``host`` resolves to for listening is a loopback address."""
    if not host:
        return False  # every interface
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        raise ConfigInvalid(f"cannot resolve the listening host {host!r}") from None
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(is_loopback_literal(str(address)) for address in addresses)


# --- limits ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceLimits:
    """The service's limits (``serve`` flags in brackets).

    ``max_connections`` open WebSocket connections [--max-connections]: above it the oldest
    connection still waiting for its first frame is evicted, or, when every connection sent
    one, a new one is closed at once with code 1013. ``max_sockets`` open sockets, handshakes
    included [--max-sockets]; 0 (the default) sizes it from the descriptor limit
    (:func:`check_fd_budget`); near it the oldest sockets without a valid first frame are evicted.
    ``max_connections_per_ip`` open sockets per address (IPv6: per /64; a /56 holds at most
    ``PREFIX_SHARES`` times as many) [--max-connections-per-ip].
    ``ip_rate`` / ``ip_burst``: new requests per second per address (token bucket) [--ip-rate,
    --ip-burst]. ``client_rate`` / ``client_burst``: requests per second per authenticated client
    [--client-rate, --client-burst]. ``max_parked_per_client``: unfinished operations a client
    may have parked [--max-parked-per-client]. ``first_frame_timeout``: seconds for the TLS and
    WebSocket handshakes and for the request frame [--first-frame-timeout].
    ``log_per_minute``: internal-error and refusal log lines per minute before suppression.
    """

    max_connections: int = 256
    max_connections_per_ip: int = 32
    ip_rate: float = 20.0
    ip_burst: int = 100
    client_rate: float = 10.0
    client_burst: int = 40
    max_parked_per_client: int = 8
    first_frame_timeout: float = 10.0
    log_per_minute: int = 20
    max_sockets: int = 0

    def __post_init__(self) -> None:
        if type(self.max_sockets) is not int or self.max_sockets < 0:
            raise ConfigInvalid("max_sockets must be 0 (from the descriptor limit) or a positive integer")
        for name in ("max_connections", "max_connections_per_ip", "ip_burst", "client_burst",
                     "max_parked_per_client", "log_per_minute"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigInvalid(f"{name} must be a positive integer")
        for name in ("ip_rate", "client_rate", "first_frame_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ConfigInvalid(f"{name} must be a positive number")

    @property
    def min_sockets(self) -> int:
        """The fewest sockets the caps need: ``max_connections`` plus room for handshakes."""
        return self.max_connections + max(16, self.max_connections // 8)


def raise_fd_limit() -> int | None:
    """Raise the soft descriptor limit (``ulimit -n``) to the hard limit; the soft limit now
    (None: unlimited, or no ``RLIMIT_NOFILE`` on this platform)."""
    try:
        import resource
    except ImportError:  # Windows: nothing to raise or check against
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):  # a platform cap below the hard limit (macOS): keep the soft one
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def check_fd_budget(limits: ServiceLimits) -> int:
    """The total socket cap, after raising the soft descriptor limit to the hard one: the
    configured ``max_sockets``, else the descriptor limit less ``FD_RESERVE`` (at most
    ``MAX_SOCKET_CAP``). Refuses (``CONFIG_INVALID``) caps the limit cannot hold."""
    limit = raise_fd_limit()
    wanted = limits.max_sockets or limits.min_sockets
    if limit is not None and wanted + FD_RESERVE > limit:
        raise ConfigInvalid(f"max_connections {limits.max_connections} needs {wanted + FD_RESERVE} file descriptors "
                            f"but the limit is {limit}: lower --max-connections or raise 'ulimit -n'")
    if limits.max_sockets:
        return limits.max_sockets
    return MAX_SOCKET_CAP if limit is None else max(wanted, min(MAX_SOCKET_CAP, limit - FD_RESERVE))


class TokenBuckets:
    """One token bucket per key (``rate`` tokens a second, at most ``burst``); at most
    ``max_keys`` keys are remembered (the least recently used is forgotten, i.e. refilled)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_keys, self._clock = float(rate), float(burst), max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, what: str) -> None:
        """Spend one token of ``key``'s bucket or raise ``RATE_LIMITED`` (``what`` was refused)."""
        with self._lock:
            now = self._clock()
            tokens, stamp = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RateLimited.after((1.0 - tokens) / self.rate, what)
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)


def peer_key(address: Any) -> str:
    """The rate-limiting key of a peer address: the IPv4 address, or the IPv6 /64."""
    if not address:
        return "unknown"
    return _host_key(str(address[0]))


@functools.lru_cache(maxsize=4096)
def _host_key(address: str) -> str:
    """``peer_key`` of one host string, remembered for the last 4,096 hosts (issue 30: every
    request and connection asks for its peer's key, and ``ipaddress`` parses in Python; bounded,
    so a flood from many addresses only evicts)."""
    host = address.split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def prefix_key(key: str) -> str | None:
    """The aggregate of a per-address key (:func:`peer_key`): an IPv6 /64's /56; None for IPv4."""
    if "/" not in key:
        return None
    try:
        return str(ipaddress.ip_network(key).supernet(new_prefix=IPV6_PREFIX))
    except ValueError:
        return None


def peer_common_name(transport: Any) -> str | None:
    """The subject CN of the verified client certificate on ``transport`` (mTLS), if any."""
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not isinstance(cert, dict):
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


# --- sockets -------------------------------------------------------------------------------------------
class _FairQueue:
    """Sockets by address key, in arrival order; :meth:`pop_victim` takes the oldest socket of
    the key holding the most (a busy attacker's, never a lone client's while others hold more)."""

    def __init__(self) -> None:
        self._by_key: dict[str, OrderedDict[int, socket.socket]] = {}
        self._key_of: dict[int, str] = {}
        self._ranks: dict[int, set[str]] = {}  # how many sockets a key holds -> those keys

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, fd: int) -> bool:
        return fd in self._key_of

    def get(self, fd: int) -> tuple[str, socket.socket] | None:
        """``fd``'s key and socket, if queued."""
        key = self._key_of.get(fd)
        return None if key is None else (key, self._by_key[key][fd])

    def add(self, key: str, fd: int, sock: socket.socket) -> None:
        """Queue ``sock`` (descriptor ``fd``) of ``key`` (once)."""
        if fd in self._key_of:
            return
        queue = self._by_key.setdefault(key, OrderedDict())
        self._rerank(key, len(queue), len(queue) + 1)
        queue[fd] = sock
        self._key_of[fd] = key

    def remove(self, fd: int) -> socket.socket | None:
        """Take ``fd``'s socket out of the queue (None if it is not queued)."""
        key = self._key_of.pop(fd, None)
        if key is None:
            return None
        queue = self._by_key[key]
        sock = queue.pop(fd)
        self._rerank(key, len(queue) + 1, len(queue))
        if not queue:
            del self._by_key[key]
        return sock

    def count(self, key: str) -> int:
        """How many sockets ``key`` holds in the queue."""
        return len(self._by_key.get(key, ()))

    def pop_victim(self, newcomer: str) -> socket.socket | None:
        """The oldest socket of the key holding the most, taken out of the queue; None if the
        queue is empty or ``newcomer``, with one more, would hold as many (the flood's addresses,
        evened out, then do not churn through each other's sockets: the newcomer is refused)."""
        if not self._ranks or self.count(newcomer) + 1 >= max(self._ranks):
            return None
        key = next(iter(self._ranks[max(self._ranks)]))
        fd = next(iter(self._by_key[key]))
        return self.remove(fd)

    def _rerank(self, key: str, old: int, new: int) -> None:
        if old:
            keys = self._ranks[old]
            keys.discard(key)
            if not keys:
                del self._ranks[old]
        if new:
            self._ranks.setdefault(new, set()).add(key)


class ConnectionGate:
    """Counts open sockets, in total, per address and per IPv6 /56; :meth:`admit` refuses those
    over the caps. Sockets that have not yet sent a valid first frame are *pending*
    (:meth:`track`, until :meth:`settle`). Near the total cap (``max_sockets`` less a margin) a
    new socket evicts the oldest pending socket of the address holding the most, if its own
    address, with it, would still hold fewer; otherwise it is refused (a flood's addresses do
    not churn through each other's sockets). :meth:`evict_waiting` does the same for
    connections past their WebSocket handshake (the connection cap)."""

    def __init__(self, max_sockets: int, max_per_ip: int, log: BoundedLog) -> None:
        self.max_sockets, self.max_per_ip, self._log = max_sockets, max_per_ip, log
        self.max_per_prefix = PREFIX_SHARES * max_per_ip
        self.open = 0
        self.evicted = 0
        self._per_ip: dict[str, int] = {}
        self._per_prefix: dict[str, int] = {}
        self._pending = _FairQueue()  # accepted, no valid first frame yet
        self._waiting = _FairQueue()  # of those, past the WebSocket handshake
        self._settled: dict[int, tuple[str, socket.socket]] = {}  # sent a valid frame: for :meth:`idle`
        self._closers: dict[int, Callable[[], None]] = {}  # idle kept connections: how to close them
        self._evicted: set[int] = set()  # idle kept connections evicted, their close under way
        self._lock = threading.Lock()

    @property
    def high_water(self) -> int:
        """Open sockets from which each new socket evicts a pending one."""
        return self.max_sockets - max(1, min(64, self.max_sockets // 8))

    def admit(self, address: Any) -> str | None:
        """The peer's key if the socket may stay open (counted until :meth:`release`), else None."""
        key = peer_key(address)
        prefix = prefix_key(key)
        with self._lock:
            reason = self._over_cap(key, prefix)
            if reason is None:
                reason = self._make_room(key)
            if reason is None:
                self.open += 1
                self._per_ip[key] = self._per_ip.get(key, 0) + 1
                if prefix is not None:
                    self._per_prefix[prefix] = self._per_prefix.get(prefix, 0) + 1
                return key
        self._log.warning(f"refused a connection from {key}: {reason}")
        metrics.RATE_LIMITED.inc(limit="sockets")
        return None

    def _make_room(self, key: str) -> str | None:
        """Near the total cap: evict for ``key`` (then it may use up to ``EVICTION_OVERDRAFT``
        descriptors of the reserve while evicted sockets close), or say why it is refused."""
        if self.open >= self.high_water and self._pending:
            if not self._evict(self._pending, key):
                return f"{self.open} sockets open (evicting from {self.high_water}) and this address holds its share"
            if self.open < self.max_sockets + EVICTION_OVERDRAFT:
                return None
        if self.open >= self.max_sockets:
            return f"{self.open} sockets open (cap {self.max_sockets})"
        return None

    def _over_cap(self, key: str, prefix: str | None) -> str | None:
        held = self._per_ip.get(key, 0)
        if held >= self.max_per_ip:
            return f"{held} sockets open from this address (cap {self.max_per_ip})"
        if prefix is not None and self._per_prefix.get(prefix, 0) >= self.max_per_prefix:
            return f"{self._per_prefix[prefix]} sockets open from {prefix} (cap {self.max_per_prefix})"
        return None

    def track(self, key: str, fd: int, sock: socket.socket) -> None:
        """``sock`` (admitted for ``key``) is pending until it sends a valid first frame."""
        with self._lock:
            self._pending.add(key, fd, sock)

    def handshaken(self, fd: int) -> None:
        """The pending socket ``fd`` finished its WebSocket handshake (it holds a connection)."""
        with self._lock:
            queued = self._pending.get(fd)
            if queued is not None:
                self._waiting.add(queued[0], fd, queued[1])

    def settle(self, fd: int) -> bool:
        """The socket ``fd`` sent a request frame: it is not evicted while it is served. False
        if it was evicted meanwhile (an idle kept connection whose close is under way, naming
        ``mpc.wire.IDLE_CLOSE_REASON``): the frame must then stay unread, as its client is told."""
        with self._lock:
            if fd in self._evicted:
                self._evicted.discard(fd)
                return False
            queued = self._pending.get(fd)
            if queued is not None:
                self._settled[fd] = queued
            self._pending.remove(fd)
            self._waiting.remove(fd)
            self._closers.pop(fd, None)
            return True

    def idle(self, fd: int, close: Callable[[], None]) -> None:
        """The connection of socket ``fd`` was served and waits for its next request (a kept
        connection, ``mpc.wire.KEEP_ALIVE_SUBPROTOCOL``): evictable again, as a new one is, but
        closed by ``close`` (with ``mpc.wire.IDLE_CLOSE_REASON``) instead of shut down: its client
        then knows that a request it sent meanwhile was not read, and sends it again."""
        with self._lock:
            queued = self._settled.pop(fd, None)
            if queued is not None:
                self._pending.add(queued[0], fd, queued[1])
                self._waiting.add(queued[0], fd, queued[1])
                self._closers[fd] = close

    def evict_waiting(self, fd: int) -> bool:
        """Make room for the connection of socket ``fd``: evict the oldest connection waiting
        for its first frame of the address holding the most, if ``fd``'s address, with it,
        would still hold fewer; whether one was evicted."""
        with self._lock:
            queued = self._pending.get(fd)
            return queued is not None and self._evict(self._waiting, queued[0])

    def _evict(self, queue: _FairQueue, newcomer: str) -> bool:
        """Shut the victim of ``queue`` for ``newcomer`` down (the event loop then closes it and
        it is released); whether there was one."""
        sock = queue.pop_victim(newcomer)
        if sock is None:
            return False
        try:
            fd = sock.fileno()
            self._pending.remove(fd)
            self._waiting.remove(fd)
            close = self._closers.pop(fd, None)
            if close is None:
                sock.shutdown(socket.SHUT_RDWR)
            else:  # an idle kept connection: closed with a reason its client reads
                self._evicted.add(fd)
                close()
        except OSError:  # closed in the meantime: its slot is free already
            pass
        self.evicted += 1
        metrics.RATE_LIMITED.inc(limit="evicted")
        return True

    def forget(self, fd: int) -> None:
        """The socket ``fd`` is closing: take it out of the queues (before its descriptor is reused)."""
        with self._lock:
            self._pending.remove(fd)
            self._waiting.remove(fd)
            self._settled.pop(fd, None)
            self._closers.pop(fd, None)
            self._evicted.discard(fd)

    def release(self, key: str) -> None:
        """A connection from ``key`` (its IP) closed: free its slot."""
        with self._lock:
            self.open -= 1
            _count_down(self._per_ip, key)
            prefix = prefix_key(key)
            if prefix is not None:
                _count_down(self._per_prefix, prefix)


def _count_down(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class _TrackedSocket(socket.socket):
    """An accepted socket that gives its slot back to the gate when it is closed."""

    _gate: ConnectionGate | None = None
    _gate_key = ""

    def close(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None and self.fileno() >= 0:
            gate.forget(self.fileno())  # before the descriptor can be reused
        super().close()
        if gate is not None:
            gate.release(self._gate_key)


class GatedSocket(socket.socket):
    """A listening socket whose ``accept`` closes sockets over the gate's caps at once (before
    any TLS or WebSocket handshake) and returns only admitted ones."""

    gate: ConnectionGate

    @classmethod
    def listen_on(cls, host: str | None, port: int, gate: ConnectionGate, backlog: int) -> GatedSocket:
        """Bind ``host:port`` (the first address ``host`` resolves to) and listen."""
        try:
            family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
            plain = socket.create_server(address, family=family, backlog=backlog)
        except OSError as exc:
            raise ConfigInvalid(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        listener = cls(plain.family, plain.type, plain.proto, fileno=plain.detach())
        listener.gate = gate
        return listener

    @staticmethod
    def require_python_accepts(loop: Any) -> None:
        """``CONFIG_INVALID`` unless ``loop`` accepts through the listener's ``accept`` above: asyncio's
        selector loops do; uvloop (libuv accepts in C) and Windows' proactor loop never call it, so
        no cap, count or eviction would apply (measured: the flood tests fail under uvloop)."""
        import asyncio.selector_events

        if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            raise ConfigInvalid(f"the service needs an asyncio selector event loop, not {type(loop).__name__}: "
                                "its connection limits are applied when a socket is accepted (docs/operations.md, Limits)")

    def accept(self) -> tuple[socket.socket, Any]:
        while True:  # BlockingIOError (nothing left to accept) ends the caller's accept loop
            fd, address = self._accept()  # type: ignore[attr-defined]
            conn = _TrackedSocket(self.family, self.type, self.proto, fileno=fd)
            key = self.gate.admit(address)
            if key is None:
                conn.close()
                continue
            conn._gate, conn._gate_key = self.gate, key
            self.gate.track(key, fd, conn)
            return conn, address


# --- logs ----------------------------------------------------------------------------------------------
class BoundedLog:
    """At most ``per_minute`` messages a minute on ``logger`` (each truncated to ``max_chars``,
    tracebacks included); the rest are counted and reported in one line when the minute ends."""

    WINDOW = 60.0

    def __init__(self, logger: logging.Logger, per_minute: int = 20, max_chars: int = 2000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.per_minute, self.max_chars, self._clock = logger, per_minute, max_chars, clock
        self._lock = threading.Lock()
        self._start = clock()
        self._count = 0
        self._suppressed = 0

    def error(self, message: str, exc: BaseException | None = None) -> None:
        """Log ``message`` (and ``exc``'s traceback) at ERROR, if this minute's budget allows."""
        if self._admit():
            extra = None
            if exc is not None:
                message = f"{message}\n{''.join(traceback.format_exception(exc)).rstrip()}"
                extra = {"exc_type": type(exc).__name__}  # a field of structured logs (mpc.service.logs)
            self.logger.error("%s", self._truncate(message), extra=extra)

    def warning(self, message: str) -> None:
        """Log ``message`` (truncated) as a warning unless the rate bound is reached."""
        if self._admit():
            self.logger.warning("%s", self._truncate(message))

    def flush(self) -> None:
        """Report the suppressed count of a minute that has ended (called periodically)."""
        with self._lock:
            self._roll(self._clock())

    def admit(self) -> bool:
        """Whether one more message fits this minute's budget (counted; else counted as suppressed)."""
        return self._admit()

    def _admit(self) -> bool:
        with self._lock:
            self._roll(self._clock())
            if self._count < self.per_minute:
                self._count += 1
                return True
            self._suppressed += 1
            return False

    def _roll(self, now: float) -> None:
        if now - self._start < self.WINDOW:
            return
        if self._suppressed:
            self.logger.warning("suppressed %d log messages in the last %.0f s", self._suppressed, now - self._start)
        self._start, self._count, self._suppressed = now, 0, 0

    def _truncate(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return f"{text[:self.max_chars]}… [truncated, {len(text)} characters]"


class BudgetFilter(logging.Filter):
    """A logging filter that lets through at most ``per_minute`` records a minute (the rest are
    counted, and reported by one "suppressed K" line on ``report_to``): another library's logger
    (``websockets``) kept inside the service's log budget."""

    def __init__(self, report_to: logging.Logger, per_minute: int = 20) -> None:
        super().__init__()
        self.bounded = BoundedLog(report_to, per_minute)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.bounded.admit()


def environment_operator_key() -> str | None:
    """Take ``$PORTAL_MPC_OPERATOR_KEY`` out of the environment (worker processes do not inherit it)."""
    return os.environ.pop(OPERATOR_KEY_ENV, None)
