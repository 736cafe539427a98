"""The model server's HTTP/1.1 connections, with the deadlines uvicorn lacks.

uvicorn (0.30) closes a kept-alive connection after `timeout_keep_alive` of silence
between requests, but sets no deadline on a request itself: a client that connects and
sends nothing, or trickles its headers or body, holds a connection (and a file
descriptor) for ever. `TimedH11Protocol` adds two: the request's headers must arrive
within `header_s` of its first byte (or of the connection), the whole request within
`request_s`. A request that misses one is answered 408 with a JSON error, where one
began, and its connection is closed; the server goes on serving the others.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


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


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and request deadlines (see the module)."""

    timeouts = DEFAULTS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timers: dict[str, asyncio.TimerHandle] = {}
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        for what, seconds in (
            ("headers", self.timeouts.header_s),
            ("request", self.timeouts.request_s),
        ):
            self._timers[what] = self.loop.call_later(seconds, self._expire, what)

    def _cancel(self, *which: str) -> None:
        for what in which:
            if (timer := self._timers.pop(what, None)) is not None:
                timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and not self._timers:  # a next request begins
            self._arm()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._cancel("headers")
        if state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._cancel("request")

    def _expire(self, what: str) -> None:
        self._timers.pop(what, None)
        if self.transport.is_closing():
            return
        began = self.conn.their_state is not h11.IDLE or bool(self.conn.trailing_data[0])
        started = self.cycle is not None and self.cycle.response_started
        if began and not started:
            self.transport.write(_timeout_response(what))
        self._cancel("headers", "request")
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("headers", "request")
        super().connection_lost(exc)


def server_config(app: Any, timeouts: Timeouts = DEFAULTS, **options: Any) -> uvicorn.Config:
    """uvicorn's config for `app` over `TimedH11Protocol` with these timeouts."""
    protocol = type("TimedH11Protocol", (TimedH11Protocol,), {"timeouts": timeouts})
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=max(1, round(timeouts.keep_alive_s)),
        log_config=None,
        loop="asyncio",
        lifespan="off",
        **options,
    )
