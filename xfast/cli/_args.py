"""Options that several commands share, and the typed values they become (spaCy's ``cli/_util.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xfast.errors import ParameterError, msg
from xfast.models.backends import NAMES as BACKENDS
from xfast.models.encoder import DEVICES
from xfast.pipelines.context import ALIGN_METHODS
from xfast.pipelines.engines.ray import ENGINES, RaySettings
from xfast.pipelines.loaders import ModelOptions
from xfast.project.config import PROJECTION_METHODS, ProjectionConfig
from xfast.report import format_table

__all__ = ["add_backend_argument", "add_common_arguments", "add_device_argument", "add_encoder_arguments",
           "aligner_kwargs_of", "QUANTIZE", "QUANTIZE_HELP", "TRANSLATOR_BACKENDS",
           "add_engine_arguments", "add_filter_argument", "add_projection_arguments", "ray_settings_of",
           "options_of", "config_of", "print_result", "named_paths", "print_json"]


def add_common_arguments(p: argparse.ArgumentParser, *, train: bool = False, translator: bool = True) -> None:
    """Options every pipeline over a labeled file shares; ``train``: the input is English
    training data and ``--lang`` takes several target languages (no evaluation options);
    ``translator``: the pipeline translates (``--translator-backend``). Every option shows its
    default in ``--help``."""
    if train:
        p.add_argument("--input", required=True,
                       help="labeled English data: CoNLL, JSONL or Parquet with tokens and ner_tags")
        p.add_argument("--lang", required=True, nargs="+", help="target languages (ISO 639 or FLORES-200 codes)")
    else:
        p.add_argument("--input", required=True,
                       help="test set: CoNLL (MasakhaNER .txt too), JSONL or Parquet with tokens (and ner_tags)")
        p.add_argument("--lang", required=True, help="language of the input (ISO 639 or FLORES-200 code)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ner-model", default="xlmr-large-conll03", help="registry name or local HF/ONNX directory")
    p.add_argument("--cache", default=None, help="stage cache directory (default: OUT/cache)")
    p.add_argument("--shard-size", type=int, default=256, help="sentences per cached shard")
    p.add_argument("--label-set", nargs="+", default=None, metavar="TYPE",
                   help="types kept in the output (default: the gold data's)")
    if not train:
        p.add_argument("--dataset", default="",
                       help="dataset name in the metrics rows, as the paper's results name it (europarl, masakhaner2, "
                            "xtreme; masakhaner* ignores DATE); xfast compare joins on it (default: empty, which joins "
                            "no reference row)")
        p.add_argument("--ignore", nargs="*", default=None, metavar="TYPE",
                       help="types scored as O (default: DATE for masakhaner*, else none)")
    p.add_argument("--label-names", nargs="*", default=None, metavar="LABEL",
                   help="JSONL integer tag names in id order, e.g. O B-PER I-PER ...")
    p.add_argument("--limit", type=int, default=None, help="only the first N sentences")
    add_device_argument(p, default="cpu", where="where the models run")
    add_backend_argument(p, what="the aligner's encoder and the NER tagger")
    if translator:
        p.add_argument("--translator-backend", default="auto", choices=TRANSLATOR_BACKENDS,
                       help="ct2: CTranslate2; torch: transformers' generate on torch (float16 on CUDA); auto: "
                            "CTranslate2 where it runs (on CUDA: where it loads its CUDA 12 libraries), else torch, "
                            "saying why")
    p.add_argument("--compute-type", default=None,
                   help="CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="threads per model (default: the runtime's)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another run's outputs in --out (else that is an error)")
    add_engine_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_device_argument(p: argparse.ArgumentParser, *, default: str, where: str) -> None:
    """``--device cpu|cuda|auto``; ``where`` begins its help, e.g. "where the encoder runs"."""
    p.add_argument("--device", default=default, choices=DEVICES,
                   help=f"{where} (auto: CUDA when torch or ONNX Runtime can use a GPU)")


#: ``--translator-backend`` values (:class:`~xfast.models.translator.Translator`'s ``backend``)
TRANSLATOR_BACKENDS = ("auto", "ct2", "torch")
#: ``--quantize`` values: ONNX Runtime's exports (int8, float16) and torch's formats (float32,
#: float16, bfloat16); which backend takes which: :data:`xfast.models.backends.PRECISIONS`
QUANTIZE = ["int8", "float16", "bfloat16", "float32"]
QUANTIZE_HELP = ("number format of the encoder: int8 (ONNX Runtime, CPU), float16 (GPU), bfloat16 (torch), "
                  "float32 (default: float16 for torch on CUDA, else float32)")


def add_backend_argument(p: argparse.ArgumentParser, *, what: str = "the encoder") -> None:
    """``--backend torch|onnx``: the runtime of ``what`` (default: torch on a CUDA GPU that torch
    can use, ONNX Runtime elsewhere)."""
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help=f"runtime of {what}: torch (packed batches, float16 on CUDA) or onnx (ONNX Runtime; "
                        "with --device cuda it needs onnxruntime-gpu) (default: torch on --device cuda/auto where "
                        "torch sees a GPU, else onnx)")


_ALIGNER_HELP = ("registry name, local Hugging Face directory or ONNX export; an NLLB-200 checkpoint aligns "
                 "with its encoder")


_LAYER_HELP = "encoder layer whose states are compared (default: the registry's for the model, an NLLB encoder's last, " \
              "else 8)"


_ALIGN_METHOD_HELP = ("alignment extraction: SimAlign itermax/inter/fwd/rev/mwmf, AWESoME softmax (default: softmax "
                      "for an NLLB encoder, else itermax)")


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    """The aligner's model options of the commands that align with one encoder (``project``,
    ``serve``): ``--aligner``, ``--layer``, ``--align-method``, ``--quantize``, ``--device``,
    ``--backend``, ``--threads``; :func:`aligner_kwargs_of` turns them into
    :class:`~xfast.aligner.Aligner` arguments."""
    p.add_argument("--aligner", default="e5-small", help=_ALIGNER_HELP)
    p.add_argument("--layer", type=int, default=None, help=_LAYER_HELP)
    p.add_argument("--align-method", default=None, choices=ALIGN_METHODS, help=_ALIGN_METHOD_HELP)
    p.add_argument("--quantize", choices=QUANTIZE, default=None, help=QUANTIZE_HELP)
    add_device_argument(p, default="auto", where="where the encoder runs")
    add_backend_argument(p)
    p.add_argument("--threads", type=int, default=None, help="encoder threads (default: the runtime's)")


def aligner_kwargs_of(args: argparse.Namespace) -> dict:
    """:class:`~xfast.aligner.Aligner` arguments of :func:`add_encoder_arguments`' options
    (``--device`` stays with the caller: under Ray each actor resolves it)."""
    kwargs = dict(model=args.aligner, layer=args.layer, method=args.align_method, quantize=args.quantize,
                  threads=args.threads)
    if args.backend is not None:  # else the Aligner's default: the keys of ONNX runs stay as they were
        kwargs["backend"] = args.backend
    return kwargs


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray options, shared by every pipeline command (docs/ray.md)."""
    p.add_argument("--engine", default="local", choices=ENGINES,
                   help="local: this process; ray: shards on a Ray cluster, same outputs (pip install \"xfast[ray]\")")
    p.add_argument("--address", default=None,
                   help="ray: a running cluster to join ('auto' or HOST:PORT); default: start one on 127.0.0.1")
    p.add_argument("--ray-actors", type=int, default=None,
                   help="ray: actors that hold a model (default: one per GPU, else the CPUs less one)")
    p.add_argument("--ray-cpus-per-actor", type=float, default=1.0, help="ray: CPUs each actor reserves")
    p.add_argument("--ray-gpus-per-actor", type=float, default=None,
                   help="ray: GPUs each actor reserves (default: 1 where the cluster has GPUs, else 0)")
    p.add_argument("--stall-timeout", type=float, default=1800.0,
                   help="ray: fail when no shard finishes for this many seconds (must exceed one shard's time)")


def add_filter_argument(p: argparse.ArgumentParser) -> None:
    """``--filter POLICY ...``, shared by ``project`` and ``translate-train`` (docs/projection.md,
    *Filtering*); :meth:`~xfast.project.filtering.FilterPolicy.parse` checks the values."""
    p.add_argument("--filter", nargs="+", default=["none"], metavar="POLICY",
                   help="filter noisy projections: 'none', or any of 'min-score=X' (remove spans whose alignment "
                        "score is below X, 0..1), 'drop-partial' (drop sentences where some labeled entity was not "
                        "projected), 'drop-unprojected' (drop sentences where none was); dropped sentences go to "
                        "OUTPUT.rejects.jsonl with their reason")


def ray_settings_of(args: argparse.Namespace) -> RaySettings | None:
    """The :class:`RaySettings` of ``--engine ray``, else None."""
    if args.engine != "ray":
        return None
    return RaySettings(address=args.address, actors=args.ray_actors, cpus_per_actor=args.ray_cpus_per_actor,
                       gpus_per_actor=args.ray_gpus_per_actor, stall_timeout_s=args.stall_timeout)


def options_of(args: argparse.Namespace) -> ModelOptions:
    """:class:`ModelOptions` from parsed arguments."""
    return ModelOptions(device=args.device, compute_type=args.compute_type, threads=args.threads,
                        layer=getattr(args, "layer", None), token_type=getattr(args, "token_type", "bpe"),
                        quantize=getattr(args, "quantize", None), backend=getattr(args, "backend", None),
                        translator_backend=getattr(args, "translator_backend", "auto"))


def print_result(res: dict, args: argparse.Namespace) -> int:
    """Print the metrics table (or one JSON object); 1 when some sentences failed, else 0."""
    if args.json:
        print(json.dumps({k: res[k] for k in ("results", "timings", "qa", "outputs")}, default=str))
    else:
        rows = [[r["pipeline_type"], r.get("xfast_align_method", ""), r.get("xfast_method", ""),
                 r["overall_precision"], r["overall_recall"], r["overall_f1"], r["proj_ratio"]]
                for r in res["results"]]
        if rows:
            print(format_table(["pipeline", "align", "method", "precision", "recall", "f1", "proj_ratio"], rows))
        failed = res["qa"]["sentences"]["failed"]
        print(f"{res['qa']['sentences']['out']} sentences, {failed} failed; outputs in {args.out}", file=sys.stderr)
    return 1 if res["qa"]["sentences"]["failed"] else 0


def add_projection_arguments(p: argparse.ArgumentParser) -> None:
    """Aligner and projection options shared with translate-train."""
    p.add_argument("--method", nargs="+", default=["heuristic", "ngram-greedy"], choices=PROJECTION_METHODS,
                   help="projection methods, one output file each")
    p.add_argument("--aligner", default="e5-small",
                   help=_ALIGNER_HELP + "; 'translator': the encoder of --translator itself (no second model)")
    p.add_argument("--align-method", nargs="+", default=None, choices=ALIGN_METHODS,
                   help=_ALIGN_METHOD_HELP + "; several run on one encoding")
    p.add_argument("--layer", type=int, default=None, help=_LAYER_HELP)
    p.add_argument("--token-type", default="bpe", choices=["bpe", "word"],
                   help="align subwords (bpe) or subword-averaged words")
    p.add_argument("--quantize", choices=QUANTIZE, default=None, help="the aligner's " + QUANTIZE_HELP)
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity, in (0, 1]")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--sub-spans", action="store_true", help="ner candidates: every sub-span too")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")
    p.add_argument("--host-workers", type=int, default=1, metavar="N",
                   help="threads that project shards at once; the outputs are the same for any N")


def config_of(args: argparse.Namespace) -> ProjectionConfig:
    """:class:`ProjectionConfig` from parsed arguments."""
    return ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                            min_words=args.min_words, max_words=args.max_words, sub_spans=args.sub_spans,
                            compat=args.compat)


def named_paths(items: list[str], what: str) -> dict[str, str]:
    """``NAME=PATH`` items (or bare paths, named by their file name up to the first dot) as a
    dict; a name given twice is [E202]."""
    out = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq:
            name, path = Path(item).name.split(".")[0], item
        if name in out:
            raise ParameterError(msg("E202", name=what, expected="distinct names (use NAME=PATH)", value=name))
        out[name] = path
    return out


def print_json(res: dict) -> None:
    """A pipeline's result as one JSON object on stdout (``--json``)."""
    print(json.dumps({k: res[k] for k in ("results", "timings", "qa", "outputs")}, default=str))
