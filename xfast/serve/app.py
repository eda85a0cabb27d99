"""``xfast serve``: an HTTP JSON API over a :class:`~xfast.serve.projector.Projector`.

FastAPI on uvicorn, bound to 127.0.0.1 unless told otherwise. ``POST /v1/project`` and
``POST /v1/align`` requests are checked, queued and batched (:mod:`xfast.serve.batching`): pairs
of concurrent requests share encoder calls of up to ``max_batch_tokens`` words, a large request
is split across calls, and a failure inside a call fails only its own request. ``GET /healthz``
answers while the process lives, ``GET /readyz`` once the models are loaded, ``GET /metrics`` in
the Prometheus text format. Refusals are JSON: 401 without the API key (when one is set), 413
for a body over ``max_request_bytes``, 415 for a body that is not JSON, 422 naming the field,
503 with ``Retry-After`` when the queue is full. On SIGTERM the server stops taking connections
and answers what it holds; what is unfinished after ``drain_timeout`` seconds gets a 503.

The pieces, each importing only those after it: :mod:`~xfast.serve.edge` (checks before the
app), :mod:`~xfast.serve.routes` (endpoints, exception type -> status),
:mod:`~xfast.serve.schemas` (bodies and OpenAPI), :mod:`~xfast.serve.state` (settings and the
shared state), :mod:`~xfast.serve.batching`, :mod:`~xfast.serve.metrics`,
:mod:`~xfast.serve.validation` (rules shared with the Python API).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from xfast import __version__
from xfast.errors import ParameterError, msg
from xfast.serve import routes, schemas
from xfast.serve.edge import Edge
from xfast.serve.state import ServerState, ServeSettings

__all__ = ["ServeSettings", "ServerState", "create_app", "serve"]


def create_app(settings: ServeSettings | None = None, projector=None) -> Edge:
    """The ASGI application. ``projector``: a loaded :class:`Projector` (or an object with its
    ``config``, ``project_batch`` and ``align_batch``); None loads one from
    ``settings.aligner`` in the background at start-up (``/readyz`` says when it is ready)."""
    settings = settings or ServeSettings()
    state = ServerState(settings, projector)
    app = FastAPI(title="xfast", summary="Annotation projection for cross-lingual NER", version=__version__,
                  lifespan=state.lifespan)
    app.state.xfast = state
    app.include_router(routes.router)
    routes.install_errors(app)
    app.openapi = lambda: schemas.openapi(app, limits=settings.limits, methods=settings.methods,
                                          secured=bool(settings.api_key))
    return Edge(app, state)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with a deadline on its graceful shutdown: ``drain_timeout`` seconds
    after the signal, what is still unanswered gets a 503 (E211) instead of being cancelled."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state

    async def shutdown(self, sockets: Sequence[socket.socket] | None = None) -> None:
        deadline = asyncio.get_running_loop().call_later(self.state.settings.drain_timeout, self.state.abort)
        try:
            await super().shutdown(sockets=sockets)
        finally:
            deadline.cancel()


def serve(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "warning",
          allow_unauthenticated: bool = False, projector=None) -> int:
    """Run the server until SIGTERM or SIGINT; prints the address it serves on to stderr.

    An address other than loopback needs ``settings.api_key`` or ``allow_unauthenticated``
    ([E210]). ``projector``: as for :func:`create_app`. Returns 0 once drained; an encoder call
    still running then (past ``drain_timeout``) is not waited for.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ParameterError(msg("E202", name="port", expected="an integer from 0 to 65535 (0: any free port)",
                                 value=port))
    key = settings.api_key
    if key is not None and (not key or not key.isascii() or not key.isprintable() or " " in key):
        raise ParameterError(msg("E202", name="api_key", expected="printable ASCII without spaces, e.g. from "
                                 "'openssl rand -hex 32'", value=f"<a key of {len(key)} characters>"))
    sock = _listen(host, port)
    if not key and not allow_unauthenticated and not _loopback(sock.getsockname()[0]):
        sock.close()
        raise ParameterError(msg("E210", host=host))
    app = create_app(settings, projector)
    print(f"xfast: serving on http://{host}:{sock.getsockname()[1]} (models load in the background; "
          "GET /readyz says when they are ready)", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=settings.drain_timeout + 0.5)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler makes a
    # clean drain end with exit status 0 instead of death by that signal.
    quiet = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _DrainingServer(config, app.state).run(sockets=[sock])
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    if app.state.busy:  # an encoder call nobody waits for: exit without joining its thread
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says IPPROTO_TCP; without it a keep-alive client waits out a delayed ACK
    # (about 40 ms) on every response
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as err:
        sock.close()
        raise ParameterError(msg("E205", host=host, port=port, reason=getattr(err, "strerror", None) or err)) from None
    return sock


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
