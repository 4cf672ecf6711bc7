"""A small TCP proxy on 127.0.0.1 that injects network faults between mailbot and a real server.

Why it exists: the fault tests (tests/test_faults.py) must show what mailbot does when the
network misbehaves in the middle of a real IMAP or SMTP conversation: a connection cut in the
middle of a FETCH, a MOVE the server carried out but never confirmed, a DATA transfer cut
half-way, a server that accepts the connection and then says nothing.  Real Dovecot and the
real SMTP sink stay behind the proxy, so the protocol is the real one; only the wire breaks.

The proxy is threaded (two pump threads per connection), so it works the same for the
blocking imapclient and for aiosmtplib running in another event loop.  Its behaviour can be
switched at runtime from the test thread:

``refuse()`` / ``accept()``  close or reopen the listening socket (connection refused)
``stall()``                  accept connections but never forward a byte either way
``slow(seconds)``            forward in small chunks with a pause before each
``cut_on(pattern, ...)``     when the client sends *pattern* (any case), cut the connection: before
                             forwarding it, or after *after* more bytes in either direction
``stall_on(pattern)``        when the client sends *pattern*, forward it, then go silent
``on_command(pattern, fn)``   when the client sends *pattern*, call *fn*, then forward it
``cut_all()``                drop every open connection now
``heal()``                   forward normally again (pending one-shot rules are dropped)

Counters (``connections``, ``cuts``, ``stalls``) let tests assert that a fault really
happened, so a test can never pass because its fault missed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

__all__ = ["Proxy"]

Direction = Literal["up", "down"]  # up: client -> server, down: server -> client
_CHUNK = 65536


@dataclass
class _Rule:
    """A one-shot fault armed by a pattern in the client's bytes."""

    pattern: bytes
    action: Literal["cut", "stall", "call"]
    direction: Direction = "down"
    after: int = 0  # bytes still forwarded in `direction` once the pattern was seen
    before: bool = False  # cut before the chunk with the pattern is forwarded
    times: int = 1
    callback: Callable[[], object] | None = None  # for "call": run before forwarding


class _Conn:
    """One proxied connection: the client socket, the upstream socket and their two pumps."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.stalled = threading.Event()
        self.tail = b""  # the last bytes sent up, so a pattern split across chunks is found
        self.armed: _Rule | None = None
        self.budget = 0  # bytes left before an armed cut fires

    def start(self) -> None:
        threading.Thread(target=self._run, name="proxy-conn", daemon=True).start()

    def _run(self) -> None:
        if self.proxy.mode == "stall":
            self._stall()
            return
        try:
            self.upstream = socket.create_connection(self.proxy.target, timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self.close()
            return
        threading.Thread(target=self._pump, args=("down",), daemon=True).start()
        self._pump("up")

    def _stall(self) -> None:
        """Hold the connection open, read and drop what the client sends, answer nothing."""
        self.stalled.set()
        self.proxy._count("stalls")
        while not self.closed.is_set():
            try:
                ready, _, _ = select.select([self.client], [], [], 0.1)
                if ready and not self.client.recv(_CHUNK):
                    break
            except OSError:
                break
        self.close()

    def _pump(self, direction: Direction) -> None:
        source, sink = (
            (self.client, self.upstream) if direction == "up" else (self.upstream, self.client)
        )
        assert source is not None and sink is not None
        try:
            while not self.closed.is_set():
                ready, _, _ = select.select([source], [], [], 0.1)
                if not ready:
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    break
                if not self._forward(direction, data, sink):
                    return
        except OSError:
            pass
        self.close()

    def _forward(self, direction: Direction, data: bytes, sink: socket.socket) -> bool:
        """Send *data* on, applying the rules; False once the connection was cut or stalled."""
        if self.stalled.is_set():
            return False
        if direction == "up" and self.armed is None:
            seen = self.tail + data
            self.tail = seen[-256:]
            rule = self.proxy._match(seen)
            if rule is not None:
                return self._arm(rule, data, len(seen) - len(data), seen, sink)
        armed = self.armed
        if armed is not None and armed.action == "cut" and direction == armed.direction:
            return self._spend(data, sink)
        delay, chunk = self.proxy.delay, self.proxy.slow_chunk
        if delay:
            for start in range(0, len(data), chunk):
                time.sleep(delay)
                sink.sendall(data[start : start + chunk])
            return True
        sink.sendall(data)
        return True

    def _arm(self, rule: _Rule, data: bytes, offset: int, seen: bytes, sink: socket.socket) -> bool:
        """The client just sent *rule*'s pattern (in *data*): act on it."""
        if rule.action == "call":
            assert rule.callback is not None
            rule.callback()  # e.g. delete a folder just before the MOVE reaches the server
            sink.sendall(data)
            return True
        if rule.before:
            self._cut()
            return False
        self.armed, self.budget = rule, rule.after
        if rule.action == "stall":
            self._go_silent()  # first: the server's answer may come back within microseconds
            sink.sendall(data)
            return False
        if rule.direction == "down":
            sink.sendall(data)
            return True
        # The budget of an upward cut counts from the end of the pattern, not of this chunk.
        at = seen.lower().find(rule.pattern.lower(), max(0, offset - len(rule.pattern) + 1))
        end = max(0, at + len(rule.pattern) - offset)
        sink.sendall(data[:end])
        return self._spend(data[end:], sink)

    def _spend(self, data: bytes, sink: socket.socket) -> bool:
        """Forward up to the armed rule's remaining budget, then cut."""
        if len(data) < self.budget:
            sink.sendall(data)
            self.budget -= len(data)
            return True
        sink.sendall(data[: self.budget])
        self.budget = 0
        self._cut()
        return False

    def _go_silent(self) -> None:
        """From now on nothing is forwarded; the client waits until its own timeout."""
        self.stalled.set()
        self.proxy._count("stalls")

    def _cut(self) -> None:
        self.proxy._count("cuts")
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)


class Proxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port``, with faults on request."""

    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.mode: Literal["forward", "stall"] = "forward"
        self.delay = 0.0
        self.slow_chunk = 64
        self.connections = 0
        self.cuts = 0
        self.stalls = 0
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = port
        self._listen()

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._unlisten()
        self.cut_all(count=False)

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), daemon=True)
        self._thread.start()

    def _unlisten(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                ready, _, _ = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                client, _addr = listener.accept()
            except OSError:
                return
            conn = _Conn(self, client)
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            conn.start()

    # -- switches ---------------------------------------------------------------------------

    def refuse(self) -> None:
        """Close the listening socket: new connections are refused; open ones are dropped."""
        self._unlisten()
        self.cut_all(count=False)

    def accept(self) -> None:
        """Listen again on the same port after ``refuse()``."""
        if self._listener is None:
            self._listen()

    def stall(self) -> None:
        """New connections are accepted but hear nothing: no greeting, no answer."""
        self.mode = "stall"

    def slow(self, seconds: float, chunk: int = 64) -> None:
        """Forward *chunk* bytes at a time with a pause of *seconds* before each."""
        self.delay, self.slow_chunk = seconds, chunk

    def heal(self) -> None:
        """Back to plain forwarding for new connections; one-shot rules not yet used are dropped."""
        with self._lock:
            self.mode, self.delay = "forward", 0.0
            self._rules.clear()
        self.accept()

    def cut_on(
        self,
        pattern: bytes,
        *,
        after: int = 0,
        direction: Direction = "down",
        before: bool = False,
        times: int = 1,
    ) -> None:
        """Cut the connection when the client sends *pattern* (the next *times* occurrences).

        ``before=True`` cuts without forwarding the chunk that holds the pattern (the server
        never sees the command).  Otherwise the command goes through and the cut falls after
        *after* more bytes in *direction*: ``direction="down", after=0`` lets the server act
        but loses its answer; ``direction="up", after=n`` cuts n bytes into what the client
        sends next (the middle of DATA).
        """
        with self._lock:
            self._rules.append(_Rule(pattern, "cut", direction, after, before, times))

    def stall_on(self, pattern: bytes, *, times: int = 1) -> None:
        """Forward the client's *pattern*, then forward nothing more on that connection."""
        with self._lock:
            self._rules.append(_Rule(pattern, "stall", times=times))

    def on_command(self, pattern: bytes, callback: Callable[[], object], *, times: int = 1) -> None:
        """Run *callback* (in the proxy's thread) when the client sends *pattern*, just before
        the command is forwarded: a way to change the server's state at an exact moment."""
        with self._lock:
            self._rules.append(_Rule(pattern, "call", times=times, callback=callback))

    def cut_all(self, *, count: bool = True) -> int:
        """Drop every open connection now; returns how many there were."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            if count:
                self._count("cuts")
            conn.close()
        return len(conns)

    @property
    def pending_rules(self) -> int:
        with self._lock:
            return sum(rule.times for rule in self._rules)

    # -- internals --------------------------------------------------------------------------

    def _match(self, data: bytes) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.pattern.lower() in data.lower():
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)
