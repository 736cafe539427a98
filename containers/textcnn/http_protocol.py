"""The model server's HTTP/1.1 connections, with the deadlines uvicorn lacks.

uvicorn (0.30) closes a kept-alive connection after `timeout_keep_alive` of silence
between requests, but sets no deadline on a request itself: a client that connects and
sends nothing, or trickles its headers or body, holds a connection (and a file
descriptor) for ever. `TimedHttpToolsProtocol` adds two: the request's headers must
arrive within `header_s` of its first byte (or of the connection), the whole request
within `request_s`. A request that misses one is answered 408 with a JSON error, where
one began, and its connection is closed; the server goes on serving the others.

It is uvicorn's httptools protocol (the C parser KServe's own server runs on), not its
pure-Python h11 one: under load the server's one event-loop thread is its bottleneck.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


@dataclass(frozen=True)
class Timeouts:
    header_s: float = 10.0
    request_s: float = 60.0
    keep_alive_s: float = 5.0  # idle time between two requests on one connection


DEFAULTS = Timeouts()


def _timeout_response(what: str) -> bytes:
    body = json.dumps({"error": f"request timed out: {what} not received in time"}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and request deadlines (see the module)."""

    timeouts = DEFAULTS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._receiving = False  # between a request's first byte and its last
        self._request_cycle: RequestResponseCycle | None = None  # once its headers are in
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
        idle = self.cycle is None or (self.cycle.response_complete and not self.pipeline)
        if idle and not self._receiving and not self._timers:
            # Bytes between requests (a request, or CRLFs the parser skips without a
            # callback): uvicorn has just dropped its keep-alive timer, so arm ours.
            self._arm()
        super().data_received(data)

    # The parser's callbacks, at a request's first byte, its headers' end and its end.
    def on_message_begin(self) -> None:
        self._receiving, self._request_cycle = True, None
        self._arm()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel("headers")
        super().on_headers_complete()
        self._request_cycle = self.cycle

    def on_message_complete(self) -> None:
        self._receiving = False
        self._cancel("headers", "request")
        super().on_message_complete()

    def _expire(self, what: str) -> None:
        self._timers.pop(what, None)
        if self.transport.is_closing():
            return
        if self.pipeline:  # queued behind a response still running: uvicorn is not reading
            self._start(what)  # its time starts again
            return
        answered = self._request_cycle is not None and self._request_cycle.response_started
        if self._receiving and not answered:  # e.g. an early 413 was its answer
            self.transport.write(_timeout_response(what))
        self._cancel("headers", "request")
        self.transport.close()

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
        lifespan="off",
        **options,
    )
