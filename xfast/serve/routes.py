"""The endpoints of ``xfast serve`` and the one table from exception type to HTTP status.

Handlers check a request with :mod:`xfast.serve.validation` before it is queued, so a bad
request is refused on its own and never reaches a batch; what fails inside a batch fails
only its own request (:class:`~xfast.serve.batching.JobFailed`). Errors are mapped by type:
a :class:`~xfast.errors.FieldError` carries its field's path as data (``loc``), nothing is
read back out of message text.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from xfast.errors import FieldError, msg
from xfast.serve import validation
from xfast.serve.batching import JobFailed, QueueFull
from xfast.serve.schemas import (
    AlignRequest,
    AlignResponse,
    Health,
    ProjectRequest,
    ProjectResponse,
    Ready,
    responses,
)
from xfast.serve.state import Draining, NotReady, ServerState

__all__ = ["router", "install_errors", "STATUS", "problem"]

log = logging.getLogger("xfast.serve")
router = APIRouter()

#: projection options a /v1/project request may set (the rest keep the projector's values)
OPTIONS = ("length_ratio", "merge_distance", "min_words", "max_words")


def problem(status: int, detail: str | list, *, retry_after: int | None = None,
            headers: dict | None = None) -> JSONResponse:
    """The JSON error response every refusal uses: ``{"detail": ...}``."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _state(request: Request) -> ServerState:
    return request.app.state.xfast


@router.get("/healthz", response_model=Health, summary="the process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, responses=responses(503), summary="the models are loaded")
async def readyz(request: Request) -> dict:
    state = _state(request)
    projector = state.ready()
    return {"status": "ready", "aligner": repr(projector.aligner), "methods": list(state.settings.methods)}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **responses(401)})
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_state(request).metrics.text(), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/project", response_model=ProjectResponse, responses=responses(401, 413, 415, 422, 503),
             summary="project each pair's entities onto its receiving words")
async def project(req: ProjectRequest, request: Request) -> dict:
    """Results in the order of ``pairs``; pairs of concurrent requests share encoder calls."""
    state = _state(request)
    state.received(request.scope)
    projector = state.ready()
    limits = state.settings.limits
    method = validation.check_method(req.method, state.settings.methods)
    raw = [(p.labeled, [tuple(e) for e in p.entities], p.receiving) for p in req.pairs]
    validation.check_pairs(raw, limits)
    pairs = [validation.check_pair(i, pair, limits) for i, pair in enumerate(raw)]
    options = {k: v for k in OPTIONS if (v := getattr(req, k)) is not None}
    config = replace(projector.config, **options) if options else projector.config
    validation.check_config(config)
    results = await _submit(state, "project", [(pair, method, config) for pair in pairs],
                            [len(lab) + len(rec) for lab, _, rec in pairs])
    return {"results": [{"labels": r.labels,
                         "spans": [{"start": s.start, "end": s.end, "label": s.label, "score": s.score}
                                   for s in r.spans]} for r in results]}


@router.post("/v1/align", response_model=AlignResponse, responses=responses(401, 413, 415, 422, 503),
             summary="word pairs [labeled, receiving] with a score each")
async def align(req: AlignRequest, request: Request) -> dict:
    """Results in the order of ``pairs``; queued and batched as /v1/project requests are."""
    state = _state(request)
    state.received(request.scope)
    state.ready()
    limits = state.settings.limits
    raw = [(p.labeled, p.receiving) for p in req.pairs]
    validation.check_pairs(raw, limits)
    pairs = [validation.check_align_pair(i, pair, limits) for i, pair in enumerate(raw)]
    got = await _submit(state, "align", pairs, [len(lab) + len(rec) for lab, rec in pairs])
    return {"results": [{"pairs": a.tolist(), "scores": [round(float(x), 6) for x in s]} for a, s in got]}


async def _submit(state: ServerState, kind: str, items: list, words: list[int]) -> list:
    try:
        return await state.batcher.submit(kind, items, words)
    except JobFailed as err:
        if isinstance(err.__cause__, FieldError):  # checked before queueing; a last guard
            raise err.__cause__ from None
        raise


# ---------------------------------------------------------------------- errors -> status
#: exception type -> HTTP status; every error body is JSON: {"detail": ...}
STATUS = {FieldError: 422, RequestValidationError: 422, NotReady: 503, QueueFull: 503, Draining: 503,
          JobFailed: 500}


def _detail(err: Exception) -> tuple[str | list, int | None]:
    """The ``detail`` of ``err``'s response and its Retry-After (None: retrying will not help)."""
    if isinstance(err, FieldError):
        return [{"loc": ["body", *err.loc], "msg": str(err), "type": "value_error"}], None
    if isinstance(err, RequestValidationError):
        return [_pydantic_problem(e) for e in err.errors()], None
    if isinstance(err, NotReady):
        return str(err), 1 if err.retry else None
    if isinstance(err, QueueFull):
        return "the queue is full; retry shortly", 1
    if isinstance(err, JobFailed):
        log.error("a %s request failed in its encoder call", err.kind, exc_info=err.__cause__)
        reason = f"{type(err.__cause__).__name__}: {err.__cause__}"
        return msg("E322", what=f"this {err.kind} request", reason=reason), None
    return str(err), 1


def _pydantic_problem(e: dict) -> dict:
    text = e.get("msg", "")
    if e.get("type") == "json_invalid":  # say what is wrong and where, as json does
        text = f"invalid JSON at character {e['loc'][-1]}: {(e.get('ctx') or {}).get('error', text)}"
    return {"loc": list(e.get("loc", ())), "msg": text, "type": e.get("type", "")}


def _handler(status: int):
    def handle(request: Request, err: Exception) -> JSONResponse:
        detail, retry_after = _detail(err)
        return problem(status, detail, retry_after=retry_after)

    return handle


def install_errors(app: FastAPI) -> None:
    """Answer each exception type of :data:`STATUS` with its status and a JSON body."""
    for kind, status in STATUS.items():
        app.add_exception_handler(kind, _handler(status))
