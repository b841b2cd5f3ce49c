"""A small HTTP proxy on loopback that injects faults in front of a real server (moto's S3).

Each rule matches requests by method and a path substring and, for its next ``count``
matches, answers with a fault instead of (or on top of) the upstream's answer:

- ``reset``: close the connection without answering (a connection reset mid-request);
- ``500`` / ``503``: an S3-style XML error answer;
- ``slow``: wait ``delay_s`` before forwarding;
- ``truncate``: send the upstream's headers and half its body, then close (a read cut off).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class FaultRule:
    action: str
    method: str | None = None
    path_contains: str = ""
    count: int = 1
    delay_s: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.count
            and (self.method is None or self.method == method)
            and self.path_contains in path
        )


@dataclass
class FaultProxy:
    upstream: str
    rules: list[FaultRule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, **kwargs) -> FaultRule:
        rule = FaultRule(action=action, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def take_rule(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def start(self) -> str:
        proxy = self
        up = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rule = proxy.take_rule(self.command, self.path)
                proxy.log.append((self.command, self.path, rule.action if rule else "pass"))
                if rule and rule.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if rule and rule.action in ("500", "503"):
                    code = int(rule.action)
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                        f"{'InternalError' if code == 500 else 'SlowDown'}</Code>"
                        f"<Message>injected {code}</Message></Error>"
                    ).encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if rule and rule.action == "slow":
                    time.sleep(rule.delay_s)
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{up.hostname}:{up.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # A HEAD answer has no body but announces the object's length.
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if rule and rule.action == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def moto_behind_proxy():
    """A moto S3 server with a FaultProxy in front: yields (moto endpoint, proxy, proxy URL)."""
    from tests.support.s3 import moto_server

    with moto_server() as endpoint:
        proxy = FaultProxy(upstream=endpoint)
        proxy_url = proxy.start()
        try:
            yield endpoint, proxy, proxy_url
        finally:
            proxy.stop()
