"""What ``xfast serve`` checks before a request reaches its endpoint, as pure ASGI.

In order: the API key (401), then for ``POST /v1/project`` and ``POST /v1/align`` the media
type (415), the body size, declared or streamed (413), and the body's bytes: UTF-8 with no NUL
and nested at most :data:`MAX_DEPTH` deep (422 with the byte position). It also counts every
request by path and status, and tells the batcher which requests are being received.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

import numpy as np
from fastapi.responses import JSONResponse

from xfast.errors import msg
from xfast.serve.routes import problem
from xfast.serve.state import ServerState

__all__ = ["Edge", "MAX_DEPTH", "API_PATHS", "OPEN_PATHS"]

#: the JSON endpoints whose bodies are checked here
API_PATHS = ("/v1/project", "/v1/align")
#: answered without the API key (probes)
OPEN_PATHS = ("/healthz", "/readyz")
#: deepest nesting of arrays and objects a body may have (a valid request needs 4)
MAX_DEPTH = 32

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Edge:
    """The ASGI application ``xfast serve`` runs: these checks, then ``app``."""

    def __init__(self, app: Callable, state: ServerState) -> None:
        self.app = app
        self.state = state
        key = state.settings.api_key
        self._key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [499]  # the client left before an answer

        async def counted_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counted_send)
        except Exception:
            status[0] = 500  # what the server answers for it
            raise
        finally:
            self.state.metrics.observe(scope["path"], status[0], time.perf_counter() - start)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is not None and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            return await _unauthorized(scope)(scope, receive, send)
        if scope["method"] != "POST" or scope["path"] not in API_PATHS:
            return await self.app(scope, receive, send)
        self.state.receiving(scope)
        try:
            refusal = _media_type(scope)
            body = None
            if refusal is None:
                body, refusal = await _read(scope, receive, self.state.settings.max_request_bytes)
            if refusal is None and body is not None:
                refusal = _malformed(body)
            if refusal is not None:
                return await refusal(scope, receive, send)
            if body is not None:
                await self.app(scope, _replay(body, receive), send)
        finally:
            self.state.received(scope)

    def _authorized(self, scope: Scope) -> bool:
        value = _header(scope, b"authorization") or b""
        kind, _, token = value.partition(b" ")
        return kind.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value
    return None


def _unauthorized(scope: Scope) -> JSONResponse:
    given = _header(scope, b"authorization")
    why = "no Authorization header" if given is None else "the key does not match"
    return problem(401, msg("E213", problem=why), headers={"WWW-Authenticate": 'Bearer realm="xfast"'})


def _media_type(scope: Scope) -> JSONResponse | None:
    """415 unless the body is declared JSON (a body without a Content-Type is read as JSON)."""
    value = _header(scope, b"content-type")
    if value is None:
        return None
    media = value.split(b";", 1)[0].strip().lower()
    if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
        return None
    return problem(415, msg("E212", got=value.decode("latin-1")))


async def _read(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, JSONResponse | None]:
    """The whole body, or a 413 once it is over ``limit`` bytes (declared or streamed); None and
    None when the client leaves first."""
    too_large = problem(413, msg("E214", limit=limit))
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None, too_large
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _malformed(body: bytes) -> JSONResponse | None:
    """422 for bytes no JSON parser should be handed: not UTF-8, a NUL, too deep a nesting."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        return _bad_json(err.start, f"the body is not UTF-8 ({err.reason})")
    at = body.find(b"\x00")
    if at >= 0:
        return _bad_json(at, "a NUL byte")
    at = too_deep(body, MAX_DEPTH)
    if at is not None:
        return _bad_json(at, f"arrays and objects nested more than {MAX_DEPTH} deep")
    return None


def _bad_json(at: int, what: str) -> JSONResponse:
    return problem(422, [{"loc": ["body", at], "msg": f"invalid JSON at byte {at}: {what}",
                          "type": "json_invalid"}])


def too_deep(body: bytes, limit: int) -> int | None:
    """The byte offset of the first ``[`` or ``{`` nested deeper than ``limit`` in JSON text
    ``body`` (brackets inside strings do not count), or None."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    a = np.frombuffer(body, np.uint8)
    idx = np.arange(len(a))
    backslash = a == 0x5C
    # a quote is escaped when an odd run of backslashes precedes it
    last_other = np.maximum.accumulate(np.where(backslash, -1, idx))
    run = np.zeros(len(a), np.int64)
    run[1:] = idx[:-1] - last_other[:-1]
    quote = (a == 0x22) & (run % 2 == 0)
    inside = np.cumsum(quote) % 2 == 1  # an opening quote and what follows, up to its closing quote
    opens = ((a == 0x5B) | (a == 0x7B)) & ~inside
    closes = ((a == 0x5D) | (a == 0x7D)) & ~inside
    depth = np.cumsum(opens.astype(np.int64) - closes)
    over = np.flatnonzero(depth > limit)
    return int(over[0]) if len(over) else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body already read, then the client's further messages."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
