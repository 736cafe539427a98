"""An HTTP server on a loopback port, serving from a daemon thread as soon as it is made:
what the local API server and the gateway share.

`close()` also shuts the connections still open (a keep-alive client between requests, a
watch waiting for a change), so no handler is left waiting on a client after it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.closing = threading.Event()  # handlers that wait (watches) end when it is set
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        # Polled for a shutdown 20 times a second, so close() takes at most 50 ms.
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close(self) -> None:
        """Stop serving, end the handlers that wait, and shut the open connections."""
        if self.closing.is_set():
            return
        self.closing.set()
        self.shutdown()
        self.server_close()
        self._thread.join()
        with self._open_lock:
            left = list(self._open)
        for connection in left:
            with contextlib.suppress(OSError):  # closed by its handler meanwhile
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
