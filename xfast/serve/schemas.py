"""Request and response bodies of ``xfast serve``, and its OpenAPI document.

The request models check shapes and JSON types only (strict: ``false`` or ``"3"`` is not an
integer, an unknown key is refused); every rule on values lives in
:mod:`xfast.serve.validation`, which the Python API shares. The OpenAPI document states those
rules (bounds, patterns, the method enum and the server's size limits) so that a request the
schema allows is one the server accepts, except for what JSON Schema cannot say: an entity's
span must lie within its sentence and not overlap another, and ``min_words`` must not exceed
a non-zero ``max_words``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from xfast.serve.validation import (
    INT_OPTION_MAX,
    TYPE_MAX_CHARS,
    TYPE_PATTERN,
    WORD_PATTERN,
    Limits,
)

__all__ = ["PairIn", "ProjectRequest", "AlignPairIn", "AlignRequest", "ProjectResponse", "AlignResponse",
           "Health", "Ready", "Problem", "FieldProblems", "responses", "openapi"]

_STRICT = ConfigDict(extra="forbid")  # an unknown key is a 422, not silently ignored


def _integral(value: object) -> object:
    """JSON Schema's integer: ``3.0`` is one (as an int); ``true`` and ``"3"`` are not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[StrictInt, BeforeValidator(_integral)]
Word = Annotated[StrictStr, Field(json_schema_extra={"minLength": 1, "pattern": WORD_PATTERN})]
EntityType = Annotated[StrictStr, Field(json_schema_extra={"minLength": 1, "maxLength": TYPE_MAX_CHARS,
                                                           "pattern": TYPE_PATTERN})]
Start = Annotated[Int, Field(json_schema_extra={"minimum": 0})]
End = Annotated[Int, Field(json_schema_extra={"minimum": 1})]


def _words(description: str):
    return Field(description=description, json_schema_extra={"minItems": 1})


def _int_option(low: int, description: str):
    return Field(default=None, description=description, json_schema_extra={"minimum": low, "maximum": INT_OPTION_MAX})


class PairIn(BaseModel):
    """A sentence pair to project: the labeled words with their entities, and the receiving words."""

    model_config = _STRICT
    labeled: list[Word] = _words("the labeled sentence's words")
    entities: list[tuple[Start, End, EntityType]] = Field(
        default=[], description="[start, end, \"TYPE\"]: half-open spans of labeled words, not overlapping; "
                                "TYPE without an IOB prefix (PER, not B-PER)")
    receiving: list[Word] = _words("the receiving sentence's words")


class ProjectRequest(BaseModel):
    """``POST /v1/project``: pairs, one method and optional projection settings for all of them."""

    model_config = _STRICT
    pairs: list[PairIn]
    method: StrictStr = Field(default="heuristic", description="the projection method")
    length_ratio: StrictFloat | None = Field(
        default=None, description="heuristic: keep a span longer than this share of its entity (default 0.8)",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1})
    merge_distance: Int | None = _int_option(0, "heuristic: merge spans this close (0: never; default 1)")
    min_words: Int | None = _int_option(1, "n-gram candidates: fewest words (default 1)")
    max_words: Int | None = _int_option(0, "n-gram candidates: most words, at least min_words "
                                                 "(0: the sentence; default 0)")


class AlignPairIn(BaseModel):
    """A sentence pair to align."""

    model_config = _STRICT
    labeled: list[Word] = _words("the labeled sentence's words")
    receiving: list[Word] = _words("the receiving sentence's words")


class AlignRequest(BaseModel):
    """``POST /v1/align``: sentence pairs."""

    model_config = _STRICT
    pairs: list[AlignPairIn]


class Span(BaseModel):
    """A projected entity: receiving words [start, end) and how well they are aligned (0 to 1)."""

    start: int
    end: int
    label: str
    score: float = Field(ge=0, le=1)


class ProjectResult(BaseModel):
    """One pair's IOB2 labels (one per receiving word) and the spans they form."""

    labels: list[str]
    spans: list[Span]


class ProjectResponse(BaseModel):
    """Results in the order of the request's pairs."""

    results: list[ProjectResult]


class AlignResult(BaseModel):
    """Word pairs [labeled, receiving] of one sentence pair, with a score each."""

    pairs: list[tuple[int, int]]
    scores: list[float]


class AlignResponse(BaseModel):
    """Results in the order of the request's pairs."""

    results: list[AlignResult]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    aligner: str
    methods: list[str]


class Problem(BaseModel):
    """An error: what is wrong and what to do."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="the path to the offending value, from 'body'")
    msg: str
    type: str


class FieldProblems(BaseModel):
    """A request refused for its content: each problem names its field."""

    detail: list[FieldProblem]


_RETRY = {"Retry-After": {"description": "seconds to wait before retrying (absent when retrying will not help)",
                          "schema": {"type": "integer"}}}
_RESPONSES = {
    401: {"model": Problem, "description": "the API key is missing or wrong (only when the server has one)",
          "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}},
    413: {"model": Problem, "description": "the body is over --max-request-bytes"},
    415: {"model": Problem, "description": "the body is not sent as application/json"},
    422: {"model": FieldProblems, "description": "invalid JSON, or a value the server refuses (loc names it)"},
    503: {"model": Problem, "description": "the models are loading or failed to load, the queue is full, or "
                                           "the server is shutting down", "headers": _RETRY},
}


def responses(*codes: int) -> dict:
    """The OpenAPI ``responses`` entries of these error statuses."""
    return {code: _RESPONSES[code] for code in codes}


def openapi(app: FastAPI, *, limits: Limits, methods: Sequence[str], secured: bool) -> dict:
    """``app``'s OpenAPI document with the server's limits and methods in the request schemas
    and, when ``secured``, the bearer key every operation but /healthz and /readyz needs."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, description=app.description,
                      routes=app.routes)
    parts = doc["components"]["schemas"]
    for model in ("PairIn", "AlignPairIn"):
        for side in ("labeled", "receiving"):
            words = parts[model]["properties"][side]
            words["maxItems"] = limits.max_sentence_words
            words["items"]["maxLength"] = limits.max_word_chars
    start, end, _ = parts["PairIn"]["properties"]["entities"]["items"]["prefixItems"]
    start["maximum"], end["maximum"] = limits.max_sentence_words - 1, limits.max_sentence_words
    for model in ("ProjectRequest", "AlignRequest"):
        parts[model]["properties"]["pairs"]["maxItems"] = limits.max_pairs
    parts["ProjectRequest"]["properties"]["method"]["enum"] = list(methods)
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in doc["paths"].items():
            if path not in ("/healthz", "/readyz"):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
    app.openapi_schema = doc
    return doc
