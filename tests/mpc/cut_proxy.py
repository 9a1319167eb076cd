"""A TCP proxy on loopback that cuts or stalls connections on demand (tests of the clients'
retries: ``tests/mpc/test_remote_retries.py``, ``test_remote_async.py``).

Each accepted connection is piped to the upstream port by two threads. :meth:`CutProxy.cut`
closes every open connection at once (both sides see EOF, as after a network cut). A one-shot
*plan* applies to the next connection only, at the first byte one side sends after its HTTP
upgrade headers (so after the WebSocket handshake):

- ``"drop-request"``: the client's first frame (its request) never reaches the service: cut;
- ``"drop-reply"``: the request reaches the service, its answer is cut;
- ``"stall-reply"``: the request reaches the service, and nothing comes back any more while the
  connection stays open (a black hole: the client only learns from its timeout);
- ``"drop-ready"``, ``"stall-ready"``: the same for the answer after the service's device-key
  challenge (its first frame passes, the device answers it, then ``ready`` is cut or stalled).
"""

from __future__ import annotations

import socket
import threading
from collections import deque

__all__ = ["CutProxy"]

_HEADERS_END = b"\r\n\r\n"
_AFTER_CHALLENGE = ("drop-ready", "stall-ready")
PLANS = ("drop-request", "drop-reply", "stall-reply", "drop-ready", "stall-ready")


class _Pipe:
    """One proxied connection: the client's socket and the upstream one."""

    def __init__(self, client: socket.socket, upstream: socket.socket, plan: str | None) -> None:
        self.client, self.upstream, self.plan = client, upstream, plan
        self.stalled = False
        self.challenged = False
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class CutProxy:
    """``ws://127.0.0.1:<port>`` in front of ``127.0.0.1:<upstream_port>``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._pipes: list[_Pipe] = []
        self._plans: deque[str] = deque()
        self._lock = threading.Lock()
        self.connections = 0
        self.triggered: list[str] = []  # the plans that fired, in order
        self._accepting = threading.Thread(target=self._accept_loop, name="cut-proxy", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def plan(self, *plans: str) -> None:
        """Apply ``plans`` to the next connections, one each."""
        for plan in plans:
            if plan not in PLANS:
                raise ValueError(plan)
        with self._lock:
            self._plans.extend(plans)

    def cut(self) -> int:
        """Close every open connection now; returns how many were cut."""
        with self._lock:
            pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()
        return len(pipes)

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def __enter__(self) -> CutProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the service is down: the client sees its connection closed
                continue
            with self._lock:
                plan = self._plans.popleft() if self._plans else None
                pipe = _Pipe(client, upstream, plan)
                self._pipes.append(pipe)
                self.connections += 1
            threading.Thread(target=self._pump, args=(pipe, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pipe, False), daemon=True).start()

    def _pump(self, pipe: _Pipe, from_client: bool) -> None:
        source, target = (pipe.client, pipe.upstream) if from_client else (pipe.upstream, pipe.client)
        trigger = {"drop-request": from_client, "drop-reply": not from_client, "stall-reply": not from_client,
                   "drop-ready": not from_client, "stall-ready": not from_client}.get(pipe.plan or "", False)
        seen = b""  # the bytes before the end of the HTTP headers of this direction
        past_headers = False
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if trigger and not past_headers:
                    seen += data
                    end = seen.find(_HEADERS_END)
                    if end < 0:
                        target.sendall(data)
                        continue
                    past_headers = True
                    head_left = end + len(_HEADERS_END) - (len(seen) - len(data))
                    target.sendall(data[:head_left])
                    data = data[head_left:]
                    if not data:
                        continue
                if trigger and past_headers and pipe.plan in _AFTER_CHALLENGE and not pipe.challenged:
                    pipe.challenged = True  # the challenge (the service's first frame) passes
                    target.sendall(data)
                    continue
                if trigger and past_headers:
                    trigger = False
                    self.triggered.append(pipe.plan or "")
                    if pipe.plan in ("stall-reply", "stall-ready"):
                        pipe.stalled = True
                    else:
                        break  # cut
                if pipe.stalled and not from_client:
                    continue  # the black hole: read and drop
                target.sendall(data)
        except OSError:
            pass
        if not pipe.stalled or from_client:
            pipe.close()
