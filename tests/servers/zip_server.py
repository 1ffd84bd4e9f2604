"""A static file server on 127.0.0.1 with HTTP Range support, for the download tests.

`ZipServer.files` maps a URL path to the bytes served there. The server responds to
`Range: bytes=N-` and `bytes=N-M` with 206 and a Content-Range, and a start past the end
with 416 and `Content-Range: bytes */<size>`. Set `ignore_range` to answer every request
with 200 and the whole file, as servers without Range support do. `cut_after` makes the
next response to a path stop after that many body bytes and close the connection, although
its Content-Length announced the full length. Every request is logged in `requests` as
(path, Range header or None, status).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class ZipServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ignore_range = False
        self.cut_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ZipServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner._answer(self)

        return Handler

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        body = self.files.get(request.path)
        range_header = request.headers.get("Range")
        if body is None:
            self._log(request.path, range_header, 404)
            request.send_error(404)
            return

        status, start, end = 200, 0, len(body)
        match = RANGE.fullmatch(range_header or "")
        if match and not self.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self._log(request.path, range_header, 416)
                request.send_response(416)
                request.send_header("Content-Range", f"bytes */{len(body)}")
                request.send_header("Content-Length", "0")
                request.end_headers()
                return
            if match.group(2):
                end = min(len(body), int(match.group(2)) + 1)
            status = 206

        self._log(request.path, range_header, status)
        request.send_response(status)
        request.send_header("Content-Type", "application/zip")
        request.send_header("Content-Length", str(end - start))
        if status == 206:
            request.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        request.end_headers()

        with self._lock:
            cut = self.cut_after.pop(request.path, None)
        if cut is not None:
            request.wfile.write(body[start : start + cut])
            request.wfile.flush()
            request.close_connection = True
            return
        request.wfile.write(body[start:end])

    def _log(self, path: str, range_header: str | None, status: int) -> None:
        with self._lock:
            self.requests.append((path, range_header, status))
