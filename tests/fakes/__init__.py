"""Local stand-ins for APIs that cannot run here (a Kubernetes API server, ...): real servers speaking
the real protocol on 127.0.0.1, driven by the real client libraries, with state the tests can inspect."""
from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any


class ServedFake:
    """A fake served by one HTTP server on a thread of its own: start() builds the server and calls
    serve(); stop() ends it; the fake is also a context manager."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Any:
        raise NotImplementedError

    def serve(self, server: ThreadingHTTPServer, name: str) -> None:
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
