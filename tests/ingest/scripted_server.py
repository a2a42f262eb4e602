"""A real HTTP server on loopback that answers from a script, for hook unit tests."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class ScriptedServer:
    """Answers each path with the next scripted (status, headers, body); records requests.
    A body may be a function of the query (a dict of value lists) returning the body."""

    def __init__(self):
        self.script: dict[str, deque] = defaultdict(deque)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                server.requests.append({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers), "body": body})
                queue = server.script[path]
                if not queue:
                    status, headers, payload = 599, {}, b"unscripted"
                else:
                    status, headers, payload = queue[0] if len(queue) == 1 else queue.popleft()
                if callable(payload):  # an answer that depends on the request's query
                    payload = payload(parse_qs(urlsplit(self.path).query))
                if status == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if status == "truncate":  # 200 and its headers, then the line goes dead
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"partial": ')
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if not isinstance(payload, bytes):
                    payload = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, *responses) -> None:
        """Queue responses for a path; the last one repeats."""
        self.script[path].extend(responses)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
