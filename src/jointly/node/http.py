"""Serve a node's REST API (and dashboard) with uvicorn in a background thread of the node process.

The API listens on loopback by default: it is the party's own operators' door,
authenticated by per-user tokens.  Partners never use it; they reach the node
only through the mutual-TLS peer server.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from jointly.config.federation import join_address
from jointly.errors import ConfigError, TransportError

log = logging.getLogger("jointly.node.http")


class ApiServer:
    """uvicorn on ``host:port`` (port 0: a free port), started and stopped with the node."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not 0 <= port < 65536:
            raise ConfigError(f"API port {port} is out of range")
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without it a keep-alive client waits ~40 ms per reply
        # (uvicorn writes headers and body separately; Nagle holds the body for the delayed ACK)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise TransportError(f"cannot listen on {join_address(host, port)} for the REST API: {exc}") from exc
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="rest-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{join_address(self.host, self.port)}"

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:
            log.exception("the REST API server stopped")

    def start(self, *, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise TransportError(f"the REST API did not start on {self.url}")
            time.sleep(0.02)
        log.info("REST API on %s", self.url)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
