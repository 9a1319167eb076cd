"""What a failed connection means to a device-side client, with no retry logic of its own.

- :func:`transport_failure`: the typed error of a failed connection (``TLS_FAILED``,
  ``SERVICE_UNAVAILABLE``), whether the same attempt can succeed again, and whether the request
  it carried can have been processed (a :class:`Failure`);
- :func:`handshake_cut` and :func:`probe_tls`: after a connection cut before any HTTP answer, one
  bare TLS handshake that tells a misconfiguration retrying cannot fix (``ws://`` to a TLS port,
  a client certificate missing or refused under mTLS) from a restart (issue 26).

Used by ``mpc.remote.channel``; the retry rules are in ``mpc.remote.blocking`` (module docstring).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from mpc.errors import EngineError, ServiceUnavailable, TlsFailed, TransportInsecure

__all__ = [
    "Failure",
    "handshake_cut",
    "probe_tls",
    "transport_errors",
    "transport_failure",
]

# Close codes that say the same connection attempt would fail again: never retried.
_FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
_BUSY_CLOSE_CODE = 1013
# A TLS connection cut (mid-handshake too, as when the service restarts) is a lost connection,
# not a certificate problem: retried like any other.
_TLS_CONNECTION_LOST = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


@dataclass(frozen=True)
class Failure:
    """A failed connection attempt: the typed ``error``; ``retryable`` unless the same attempt
    would fail again (TLS, a protocol-violation close); ``unprocessed`` when the request it
    carried cannot have been processed (never sent, or closed with 1013 before being read)."""

    error: EngineError
    retryable: bool
    unprocessed: bool


def transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of a failed, closed or timed-out connection (both ``websockets`` APIs)."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    return (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, asyncio.TimeoutError)


def transport_failure(exc: BaseException, request_sent: bool) -> Failure:
    """The :class:`Failure` of a connection that raised ``exc`` (``request_sent``: whether the
    request frame had been handed to the connection). ``TLS_FAILED`` when a TLS error is in the
    chain of causes (an untrusted certificate, a refused client certificate), else
    ``SERVICE_UNAVAILABLE`` naming the close code or the exception."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, _TLS_CONNECTION_LOST):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or "handshake failed"
            return Failure(TlsFailed(f"TLS with the custodian service failed: {reason}"), False, True)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, InvalidStatus):  # the HTTP upgrade refused: 5xx (a proxy, a restart) may pass
        status = exc.response.status_code
        return Failure(ServiceUnavailable(f"the custodian service refused the WebSocket upgrade (HTTP {status})"),
                       status >= 500 or status == 429, True)
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        code = exc.rcvd.code
        if code == _BUSY_CLOSE_CODE:
            return Failure(ServiceUnavailable("the custodian service is busy (1013); retry later"), True, True)
        return Failure(ServiceUnavailable(f"the custodian service closed the connection ({code})"),
                       code not in _FATAL_CLOSE_CODES, not request_sent)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        detail = "timed out"
    else:
        detail = f"{type(exc).__name__}: {exc}"[:200]
    return Failure(ServiceUnavailable(f"cannot reach the custodian service ({detail})"), True, not request_sent)


# --- handshake failures that retrying cannot fix (issue 26) -----------------------------------------------
_PROBE_TIMEOUT = 2.0


def handshake_cut(exc: BaseException) -> bool:
    """Whether a connection failed the way a misconfigured client fails, and a restart too: the
    server accepted the TCP connection and closed it before any HTTP answer (``ws://`` to a TLS
    port; a client certificate missing or refused under mTLS, whose TLS 1.3 alert arrives as a
    plain close)."""
    from websockets.exceptions import ConnectionClosed, InvalidMessage

    return isinstance(exc, (InvalidMessage, ConnectionClosed)) or isinstance(exc, _TLS_CONNECTION_LOST)


def probe_tls(host: str, port: int, scheme: str, context: ssl.SSLContext | None,
              timeout: float = _PROBE_TIMEOUT) -> EngineError | None:
    """One bare TLS handshake to ``host:port`` after :func:`handshake_cut`: the error retrying
    cannot fix, or None (the port is closed now, or TLS behaves: a transient fault).

    - ``ws://`` and the port completes a TLS handshake: the service speaks TLS: use ``wss://``
      (``TRANSPORT_INSECURE``, with that hint);
    - ``wss://`` and the server's first record after the handshake is a certificate alert: the
      service wants a client certificate this client does not present or it does not trust
      (``TLS_FAILED``: configure ``client_cert`` / ``client_key``)."""
    import socket

    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None  # not listening (restarting): transient
    try:
        if scheme == "ws":
            bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            bare.check_hostname, bare.verify_mode = False, ssl.CERT_NONE
            try:
                bare.wrap_socket(raw, server_hostname=host).close()
            except (OSError, ssl.SSLError):
                return None
            return TransportInsecure("the custodian service speaks TLS on this port: use a wss:// URL, not ws://")
        if context is None:
            return None
        return _client_certificate_refused(raw, host, context)
    finally:
        raw.close()


def _client_certificate_refused(raw: Any, host: str, context: ssl.SSLContext) -> EngineError | None:
    """``TLS_FAILED`` if the server completes the TLS handshake but then closes without answering
    ``GET /healthz`` (or with a certificate alert): what an mTLS service does to a client whose
    certificate is missing or not trusted (a TLS 1.3 server checks it after the handshake)."""
    refused = TlsFailed("the custodian service closed the TLS connection without answering: it requires a client "
                        "certificate it trusts (configure client_cert and client_key)")
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError):
        return None  # the handshake itself failed: the connection's own error says why
    try:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        answered = tls.recv(1)
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", "") or "").upper()
        return refused if "CERTIFICATE" in reason or isinstance(exc, ssl.SSLEOFError) else None
    except OSError:
        return None
    finally:
        tls.close()
    return None if answered else refused

