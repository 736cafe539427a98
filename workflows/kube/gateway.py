"""The cluster's DNS and ingress gateway for local processes: an HTTP forward proxy on
loopback. A process given it as HTTP_PROXY (`requests` and the kubernetes client honour
it) reaches a cluster name such as `textcnn-predictor.default.svc.cluster.local` through
it: the request (method, path, query, headers, body) goes to the loopback server
`routes()` names for the host, read at each request (what runs where changes during a
run), and its status, body and Content-Type come back; a host it does not name gets 502,
as an unresolvable name fails. Keeps each request's host, for tests.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from workflows.kube.loopback import LoopbackServer

Routes = Callable[[], Mapping[str, str]]  # host -> http://127.0.0.1:PORT
# Headers that concern the connection to the proxy, not the request (RFC 9110 7.6.1); the
# length is the forwarded body's own.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
TIMEOUT_S = 60.0  # a model server's answer may take a while; a hung one must not hang us


class Gateway(LoopbackServer):
    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.hosts: list[str] = []
        super().__init__(_ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: Gateway

    def _forward(self) -> None:
        target = urlsplit(self.path)  # a proxy's request line holds the absolute URL
        host = target.hostname or ""
        self.server.hosts.append(host)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        upstream = self.server.routes().get(host)
        if upstream is None:
            self._answer(502, f"no route to host {host}\n".encode(), "text/plain")
            return
        address = urlsplit(upstream)
        path = target.path or "/"
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(
            address.hostname or "127.0.0.1", address.port, timeout=TIMEOUT_S
        )
        try:
            connection.request(
                self.command,
                f"{path}?{target.query}" if target.query else path,
                body=body if body or self.command in ("POST", "PUT", "PATCH") else None,
                headers=headers,
            )
            answer = connection.getresponse()
            payload = answer.read()
            kind = answer.getheader("Content-Type", "application/octet-stream")
            self._answer(answer.status, payload, kind)
        except OSError as e:  # the route's server is down or hung
            self._answer(502, f"{host}: {e}\n".encode(), "text/plain")
        finally:
            connection.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def _answer(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass
