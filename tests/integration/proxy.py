"""A TCP proxy between the operator and kube-apiserver that a test can cut or hang.

TLS passes through untouched (the apiserver's certificate names 127.0.0.1, which is
where the proxy listens too). `cut()` resets every open connection at once (RST, as a
load balancer, a network blip or a dying apiserver host does); new connections are
accepted right away. `hang()` makes every connection, open or new, go silent: no byte
moves either way and nothing is reset (a dead apiserver instance behind a load balancer,
a partition); `heal()` ends that the way a load balancer finally does, by resetting the
hung connections, and lets new ones through. `refuse()` resets open connections and
every new one until `heal()` (the apiserver unreachable). `open_connections` counts what
the operator holds.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    upstream: socket.socket
    closed: bool = False


@dataclass(eq=False)
class TcpProxy:
    upstream_port: int
    host: str = "127.0.0.1"
    port: int = 0
    _pairs: set[_Pair] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _hung: threading.Event = field(default_factory=threading.Event)
    _refusing: threading.Event = field(default_factory=threading.Event)
    peak_connections: int = 0
    accepted: int = 0

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(256)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name="proxy accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        self.cut()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def hang(self) -> None:
        """From now on no byte moves on any connection, open or new; none is reset."""
        self._hung.set()

    def refuse(self) -> None:
        """Reset every open connection, and every new one until `heal()`."""
        self._refusing.set()
        self.cut()

    def heal(self) -> int:
        """End a hang or a refusal: hung connections are reset (never resumed: what they
        held is lost, as when a load balancer gives up on them), new ones go through.
        Returns how many were reset."""
        was_hung = self._hung.is_set()
        self._refusing.clear()
        reset = self.cut() if was_hung else 0
        self._hung.clear()
        return reset

    def cut(self) -> int:
        """Reset every open connection; return how many there were."""
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            pair.closed = True
            _reset(pair.client)
            _reset(pair.upstream)
        return len(pairs)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.upstream_port), timeout=5)
            except OSError:
                _reset(client)  # the apiserver is down: so is the connection
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
                self.accepted += 1
                self.peak_connections = max(self.peak_connections, len(self._pairs))
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        peers = {pair.client: pair.upstream, pair.upstream: pair.client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not pair.closed:
                    if self._hung.is_set():  # silent: nothing read, nothing sent
                        time.sleep(0.05)
                        continue
                    for key, _ in selector.select(timeout=0.05):
                        if self._hung.is_set():
                            break
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        peers[source].sendall(data)
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    self._pairs.discard(pair)
                for sock in peers:
                    with contextlib.suppress(OSError):
                        sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
