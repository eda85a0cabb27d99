"""``xfast serve``: projection and alignment over HTTP (JSON), batching concurrent requests.

FastAPI, uvicorn and prometheus_client are the ``serve`` extra: checked before anything else,
and imported only when the server starts.
"""

from __future__ import annotations

import argparse
import os

from xfast._optional import require
from xfast.cli._args import add_encoder_arguments, aligner_kwargs_of
from xfast.errors import ParameterError, msg
from xfast.models.encoder import providers_for, takes_language
from xfast.models.flores import flores_code
from xfast.serve.projector import SERVE_METHODS

NAME = "serve"
HELP = "serve projection and alignment over HTTP (JSON), batching concurrent requests"
EPILOG = "example: xfast serve --port 8080 --aligner e5-small --max-wait-ms 5"


def add_arguments(sv: argparse.ArgumentParser) -> None:
    """The ``xfast serve`` options."""
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8080, help="port (0: any free one, printed at start)")
    add_encoder_arguments(sv)
    sv.add_argument("--labeled-lang", default="en", help="language of the labeled side (read by NLLB encoders)")
    sv.add_argument("--receiving-lang", default=None,
                    help="language of the receiving side; needed by an NLLB encoder (e.g. de, yor_Latn)")
    sv.add_argument("--methods", nargs="+", default=list(SERVE_METHODS), choices=SERVE_METHODS,
                    help="projection methods offered")
    sv.add_argument("--max-wait-ms", type=float, default=5.0,
                    help="longest an encoder call waits for more requests to share it, or a tenth of the last "
                         "call's time if longer (a lone request goes at once)")
    sv.add_argument("--max-batch-tokens", type=int, default=8192, help="most words (both sides) per encoder call")
    sv.add_argument("--max-queue", type=int, default=256, help="requests waiting beyond this get 503 + Retry-After")
    sv.add_argument("--max-request-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    sv.add_argument("--max-pairs", type=int, default=256, help="most sentence pairs in one request (more: 422)")
    sv.add_argument("--max-sentence-words", type=int, default=500, help="most words in one sentence (more: 422)")
    sv.add_argument("--max-word-chars", type=int, default=200, help="most characters in one word (more: 422)")
    sv.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                    help="on SIGTERM, time to finish the requests in hand; those unfinished then get 503 + Retry-After")
    sv.add_argument("--api-key", default=None, metavar="KEY",
                    help="require 'Authorization: Bearer KEY' on every endpoint but /healthz and /readyz (default: "
                         "$XFAST_API_KEY, else none; prefer the variable: other users can see a command line)")
    sv.add_argument("--allow-unauthenticated", action="store_true",
                    help="serve an address other than loopback without an API key (your own access control guards it)")
    sv.add_argument("--host-workers", type=int, default=1, metavar="N",
                    help="threads that extract alignments and project the slices (32 pairs or more) of one "
                         "encoder call; the answers are the same for any N (default: 1)")
    sv.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                    help="uvicorn's log level")


def run(args: argparse.Namespace) -> int:
    """Run ``xfast serve`` until SIGTERM or SIGINT."""
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, what="xfast serve", extra="serve")
    from xfast.serve.app import ServeSettings, serve  # the serve extra: imported only to serve

    for name in ("max_wait_ms", "max_batch_tokens", "max_queue", "max_request_bytes", "max_pairs",
                 "max_sentence_words", "max_word_chars", "host_workers"):
        if not getattr(args, name) > 0:
            raise ParameterError(msg("E202", name="--" + name.replace("_", "-"), expected="a number > 0",
                                     value=getattr(args, name)))
    if not args.drain_timeout >= 0:
        raise ParameterError(msg("E202", name="--drain-timeout", expected="seconds >= 0", value=args.drain_timeout))
    if takes_language(args.aligner):  # the languages are checked before the server starts
        if not args.receiving_lang:
            raise ParameterError(msg("E415", model=args.aligner, how="--receiving-lang (and --labeled-lang)"))
        flores_code(args.labeled_lang), flores_code(args.receiving_lang)  # E402 for one NLLB-200 lacks
    aligner = dict(aligner_kwargs_of(args), providers=providers_for(args.device))
    settings = ServeSettings(max_wait_ms=args.max_wait_ms, max_batch_tokens=args.max_batch_tokens,
                             max_queue=args.max_queue, max_request_bytes=args.max_request_bytes,
                             methods=tuple(args.methods), aligner=aligner,
                             langs=(args.labeled_lang, args.receiving_lang) if args.receiving_lang else None,
                             max_pairs=args.max_pairs, max_sentence_words=args.max_sentence_words,
                             max_word_chars=args.max_word_chars, drain_timeout=args.drain_timeout,
                             api_key=args.api_key or os.environ.get("XFAST_API_KEY") or None,
                             host_workers=args.host_workers)
    return serve(settings, host=args.host, port=args.port, log_level=args.log_level,
                 allow_unauthenticated=args.allow_unauthenticated)
