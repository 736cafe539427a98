"""The model server's HTTP/1.1 connections, with the deadlines uvicorn lacks.

uvicorn (0.30) closes a kept-alive connection after `timeout_keep_alive` of silence
between requests, but sets no deadline on a request itself: a client that connects and
sends nothing, or trickles its headers or body, holds a connection (and a file
descriptor) for ever. `TimedHttpToolsProtocol` adds two: the request's headers must
arrive within `header_s` of its first byte (or of the connection), the whole request
within `request_s`. A request that misses one is answered 408 with a JSON error, where
one began, and its connection is closed; the server goes on serving the others.

A request the parser refuses (a malformed request line, `Content-Length: -5`, both
Content-Length and Transfer-Encoding, a bad chunk) is answered 400 with a JSON error giving
the parser's reason, where uvicorn answers a plain-text "Invalid HTTP request received.",
and its connection is closed. Either error answer comes after the answers to the requests
before it on the connection (HTTP/1.1 answers in order): uvicorn writes its 400 and closes
at once, cutting off an answer still being computed for a request sent in the same packet.

No upgrade is taken (the server has no WebSocket route): a request asking for one
(WebSocket, h2c) is answered over HTTP/1.1, as RFC 9110 (7.8) lets a server do, and the
connection is read on; one with a body is refused 400, as the parser skips its body.

It is uvicorn's httptools protocol (the C parser KServe's own server runs on), not its
pure-Python h11 one: under load the server's one event-loop thread is its bottleneck.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)


@dataclass(frozen=True)
class Timeouts:
    header_s: float = 10.0
    request_s: float = 60.0
    keep_alive_s: float = 5.0  # idle time between two requests on one connection


DEFAULTS = Timeouts()


def _reason(error: httptools.HttpParserError) -> str:
    # A parser callback refusing the request (uvicorn's parse_url on an invalid URL, ours
    # on an Upgrade with a body) reaches us as "User callback error"; its error says why.
    cause = error.__context__
    return str(cause if isinstance(cause, httptools.HttpParserError) else error)


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and request deadlines (see the module)."""

    timeouts = DEFAULTS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._receiving = False  # between a request's first byte and its last
        self._request_cycle: RequestResponseCycle | None = None  # once its headers are in
        # Once a request failed: the request (its cycle, if its headers were in), and the
        # error answer (b"" where that request already has its answer) that ends the
        # connection once the answers before it are written.
        self._failed: RequestResponseCycle | None = None
        self._last_answer: bytes | None = None
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte

    def _arm(self) -> None:
        for what in ("headers", "request"):
            if what not in self._timers:
                self._start(what)

    def _start(self, what: str) -> None:
        seconds = self.timeouts.header_s if what == "headers" else self.timeouts.request_s
        self._timers[what] = self.loop.call_later(seconds, self._expire, what)

    def _cancel(self, *which: str) -> None:
        for what in which:
            if (timer := self._timers.pop(what, None)) is not None:
                timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._last_answer is not None:
            return  # after a failed request: what follows it is not read
        idle = self.cycle is None or (self.cycle.response_complete and not self.pipeline)
        if idle and not self._receiving and not self._timers:
            # Bytes between requests (a request, or CRLFs the parser skips without a
            # callback): uvicorn has just dropped its keep-alive timer, so arm ours.
            self._arm()
        # uvicorn's data_received, but for the answer to a request the parser refuses.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # No upgrade is taken (server_config: ws="none"), so the request was answered
            # over HTTP/1.1, and the bytes after it are the next request: uvicorn drops them
            # (and its warning advises installing a WebSocket library).
            self.logger.info("Upgrade declined: the request is answered over HTTP/1.1")
            self.data_received(data[upgrade.args[0] :])
        except httptools.HttpParserError as e:
            self._fail(400, f"invalid HTTP request: {_reason(e)}")

    # The parser's callbacks, at a request's first byte, its headers' end and its end.
    def on_message_begin(self) -> None:
        self._receiving, self._request_cycle = True, None
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel("headers")
        if self.parser.should_upgrade() and self._declares_body():
            # httptools has the parser skip the body of a request asking to upgrade (the
            # bytes after its headers are the new protocol's): it cannot be answered here.
            raise httptools.HttpParserError(
                "a request asking to Upgrade cannot have a body here; send it without Upgrade"
            )
        super().on_headers_complete()
        self._request_cycle = self.cycle

    def on_message_complete(self) -> None:
        self._receiving = False
        self._cancel("headers", "request")
        super().on_message_complete()

    def _declares_body(self) -> bool:
        return any(
            name == b"transfer-encoding" or (name == b"content-length" and int(value) != 0)
            for name, value in self.headers
        )

    def _expire(self, what: str) -> None:
        self._timers.pop(what, None)
        if self.transport.is_closing():
            return
        if self.pipeline:  # queued behind a response still running: uvicorn is not reading
            self._start(what)  # its time starts again
        elif self._receiving:
            self._fail(408, f"request timed out: {what} not received in time")
        else:  # an idle connection
            self._cancel("headers", "request")
            self.transport.close()

    def _fail(self, status: int, message: str) -> None:
        """Answer the request being received `status` with `{"error": message}` and close
        the connection, once the answers to the requests before it are written."""
        self._cancel("headers", "request")
        failed = self._request_cycle if self._receiving else None
        self._receiving, self._failed = False, failed
        if failed is not None and failed.response_started:  # e.g. an early 413 answered it
            self._last_answer = b""
        else:
            self.logger.warning("%d %s", status, message)
            self._last_answer = self._error_response(status, message)
        if not self._answering():
            self._close()

    def _answering(self) -> bool:
        """Whether an answer to an earlier request is still being computed or queued. The
        running one is `self.cycle` unless requests are queued behind it; the failed
        request's is never awaited (queued, it starts as the connection closes, and reads
        a disconnect)."""
        cycle = self.cycle
        running = cycle is not None and cycle is not self._failed and not cycle.response_complete
        return running or bool(self.pipeline)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._last_answer is not None and not self._answering():
            self._close()

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self._last_answer or b"")
            self.transport.close()

    def _error_response(self, status: int, message: str) -> bytes:
        body = json.dumps({"error": message}).encode()
        headers = [
            *self.server_state.default_headers,  # date and server, as in uvicorn's answers
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return STATUS_LINE[status] + head + b"\r\n" + body

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("headers", "request")
        super().connection_lost(exc)


def server_config(app: Any, timeouts: Timeouts = DEFAULTS, **options: Any) -> uvicorn.Config:
    """uvicorn's config for `app` over `TimedHttpToolsProtocol` with these timeouts."""
    protocol = type("TimedHttpToolsProtocol", (TimedHttpToolsProtocol,), {"timeouts": timeouts})
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=max(1, round(timeouts.keep_alive_s)),
        log_config=None,
        loop="asyncio",
        # No WebSocket route: uvicorn would hand a WebSocket handshake to the websockets
        # library, which refuses it with a bodiless text/plain 403.
        ws="none",
        lifespan="off",
        **options,
    )
