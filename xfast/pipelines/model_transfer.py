"""Model transfer (docs/translation.md, the baseline), the engine behind ``xfast model-transfer``, and what
the translate-test and translate-train pipelines share with it.

Model transfer applies the NER model to the receiving words directly. The same cached stage
(``ner-receiving``) gives the ``ner`` candidates of the projection pipelines, so a language's
words are tagged once for both. Shared here: the lazily loaded models (:class:`Models`),
reading a test set (CoNLL, MasakhaNER ``.txt`` or Hugging Face-style JSONL), the metrics row
in the reference results' CSV columns (:func:`metrics_row`, :func:`xfast.report.write_metrics_csv`) and the
dataset defaults (MasakhaNER ignores DATE at evaluation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from xfast.errors import DataError, OutputError, ParameterError, msg
from xfast.report import write_metrics_csv
from xfast.pipelines.cache import CacheStats, model_fingerprint, run_stage
from xfast.pipelines.runner import RunReport, file_sha256, map_label_set, versions, write_json

__all__ = ["ModelOptions", "Models", "Run", "start_run", "read_test_set", "words_key", "receiving_ner",
           "label_set_of", "add_common_arguments", "options_of", "print_result", "write_labels",
           "default_ignore", "describe", "metrics_row",
           "model_transfer", "add_arguments", "main"]

Entity = tuple[int, int, str]

# --------------------------------------------------------------------------- models


@dataclass
class ModelOptions:
    """How models run: device, CTranslate2 compute type, threads, and the aligner's encoder
    settings (layer, token type, int8 quantization)."""

    device: str = "cpu"
    compute_type: str | None = None
    threads: int | None = None
    layer: int = 8
    token_type: str = "bpe"
    quantize: str | None = None


class Models:
    """Models named by registry name or directory, or given as loaded objects, loaded on first
    use (a fully cached rerun loads nothing) and shared between stages that name the same one.

    ``*_fields`` describe a model for cache keys without loading it. A loaded object keeps its
    own settings (a Tagger's ``truncate``, an Aligner's ``compat``).
    """

    def __init__(self, options: ModelOptions | None = None, report: RunReport | None = None) -> None:
        self.options = options or ModelOptions()
        self.report = report
        self._loaded: dict[tuple, object] = {}

    def _get(self, kind: str, spec: object, build, variant: str = ""):
        if not isinstance(spec, (str, Path)):
            self._loaded.setdefault((kind, self.describe(spec)), spec)
            return spec
        key = (kind, str(spec) + variant)
        if key not in self._loaded:
            if self.report is None:
                self._loaded[key] = build()
            else:
                with self.report.stage(f"load {kind}"):
                    self._loaded[key] = build()
        return self._loaded[key]

    def _providers(self) -> list[str] | None:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.options.device == "cuda" else None

    def translator(self, spec):
        """A :class:`~xfast.models.translator.Translator`."""
        from xfast.models.translator import Translator

        o = self.options
        return self._get("translator", spec, lambda: Translator(
            spec, device=o.device, compute_type=o.compute_type, threads=o.threads))

    def tagger(self, spec, *, truncate: bool = False):
        """A :class:`~xfast.models.tagger.Tagger`; ``truncate``: docs/compat.md (one pass over
        the first window of a long sentence)."""
        from xfast.models.tagger import Tagger

        return self._get("tagger", spec, lambda: Tagger(spec, threads=self.options.threads,
                                                        providers=self._providers(), truncate=truncate),
                         variant=" (truncate)" if truncate else "")

    def aligner(self, spec, *, method: str = "itermax", compat: bool = False):
        """An :class:`~xfast.aligner.Aligner` (its encoder serves every extraction method)."""
        from xfast.aligner import Aligner

        o = self.options
        return self._get("aligner", spec, lambda: Aligner(
            spec, layer=o.layer, method=method, token_type=o.token_type, quantize=o.quantize,
            threads=o.threads, providers=self._providers(), compat=compat),
            variant=" (compat)" if compat else "")

    def translator_fields(self, spec) -> dict:
        if isinstance(spec, (str, Path)):
            o = self.options
            return {"model": model_fingerprint(spec), "device": o.device, "compute_type": o.compute_type,
                    "backend": "ct2", "beam_size": 1}
        return {"model": model_fingerprint(spec), "device": spec.device, "compute_type": spec.compute_type,
                "backend": spec.backend, "beam_size": spec.beam_size}

    def tagger_fields(self, spec, *, truncate: bool = False) -> dict:
        if isinstance(spec, (str, Path)):
            fields = {"model": model_fingerprint(spec), "backend": "onnx", "max_length": None}
        else:
            truncate = getattr(spec, "truncate", False)
            fields = {"model": model_fingerprint(spec), "backend": spec.backend, "max_length": spec.max_length,
                      "labels": list(spec.labels)}
        if truncate:  # only then, so that default keys stay as they were
            fields["truncate"] = True
        return fields

    def aligner_fields(self, spec) -> dict:
        if isinstance(spec, (str, Path)):
            o = self.options
            return {"model": model_fingerprint(spec), "layer": o.layer, "token_type": o.token_type,
                    "quantize": o.quantize, "backend": "onnx", "distortion": 0.0, "max_count": 2,
                    "alpha": 0.9, "threshold": 1e-3}
        s = spec.settings
        fields = {"model": model_fingerprint(spec), "backend": spec.encoder.backend,
                  **{k: s[k] for k in ("layer", "token_type", "quantize", "distortion", "max_count", "alpha",
                                       "threshold")}}
        if spec.encoder.truncate:  # a loaded compat Aligner: its alignments differ on long input
            fields["truncate"] = True
        return fields

    def runtime_stats(self) -> dict:
        """Counts of the models this run loaded (encoder, tagger), for the QA summary."""
        out = {}
        for (kind, name), obj in self._loaded.items():
            st = obj.stats
            if kind != "translator":  # translator counts come from the cache shards
                out[f"{kind}:{name}"] = st.as_dict() if hasattr(st, "as_dict") else dict(st)
        return out

    def describe(self, spec) -> str:
        """A model's name for reports: the registry name or the directory."""
        if isinstance(spec, (str, Path)):
            return str(spec)
        return str(getattr(spec, "model_dir", None) or getattr(spec, "settings", {}).get("model") or spec)


# --------------------------------------------------------------------------- data


def read_test_set(path: str | Path, *, label_names: list[str] | None = None, limit: int | None = None) -> list:
    """Sentences of a CoNLL file (MasakhaNER ``.txt`` included) or Hugging Face-style JSONL
    (``{"tokens", "ner_tags"}``; integer tags need ``label_names``); labels where present."""
    from itertools import islice

    from xfast.io import read_any, read_jsonl

    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        from xfast.io.files import lines

        first = next((t for _, t in lines(path) if t.strip()), "")
        has_tags = '"ner_tags"' in first
        sents = read_jsonl(path, label_names=label_names, labels=has_tags)
    else:
        sents = read_any(path)
    out = list(islice(sents, limit)) if limit is not None else list(sents)
    if not out:
        raise DataError(path, None, msg("E512", path=path))
    return out


def words_key(words: list[list[str]]) -> str:
    """Hash of the receiving words (the root of every stage's cache key)."""
    return hashlib.sha256(json.dumps(words, ensure_ascii=False).encode()).hexdigest()[:20]


def label_set_of(gold: list[list[str]] | None) -> set[str] | None:
    """Entity types of the gold data (docs/translation.md), or None without gold."""
    if gold is None:
        return None
    return {lab[2:] for s in gold for lab in s if lab != "O"}


def default_ignore(dataset: str) -> tuple[str, ...]:
    """Types ignored at evaluation by default: DATE for MasakhaNER (docs/evaluation.md), else none."""
    return ("DATE",) if "masakhaner" in dataset.lower() else ()


@dataclass
class Run:
    """What every pipeline run starts from (:func:`start_run`): the output directory, the
    stage cache directory, the run report, the models, the cache counters, the keyword
    arguments every cached stage takes (``common``) and the input read (``sents``, ``words``,
    ``gold``: the labels or None when some sentence has none, ``keep``: the types kept)."""

    out: Path
    cache: Path
    report: RunReport
    models: Models
    cache_stats: CacheStats
    common: dict
    sents: list
    words: list[list[str]]
    gold: list[list[str]] | None
    keep: set[str] | None


def start_run(input: str | Path, out_dir: str | Path, *, options: ModelOptions | None, cache: str | Path | None,
              shard_size: int, label_set: set[str] | None, label_names: list[str] | None, limit: int | None,
              progress: bool) -> Run:
    """Read ``input`` (stage ``read``; a bad input stops here, before anything is created),
    then create ``out_dir`` and set up the report, models and stage cache (default
    ``out_dir/cache``); ``keep`` is ``label_set``, else the gold data's types."""
    from xfast.io.files import make_dirs

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    out = Path(out_dir)
    report = RunReport()
    with report.stage("read"):
        sents = read_test_set(input, label_names=label_names, limit=limit)
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder")
    make_dirs(out)
    root = Path(cache) if cache is not None else out / "cache"
    models = Models(options, report)
    cstats = CacheStats()
    common = dict(cache=root, shard_size=shard_size, cache_stats=cstats, report=report, progress=progress)
    words = [s.tokens for s in sents]
    gold = [s.labels for s in sents] if all(s.labels is not None for s in sents) else None
    keep = label_set if label_set is not None else label_set_of(gold)
    report.sentences_in = len(words)
    return Run(out, root, report, models, cstats, common, sents, words, gold, keep)


def receiving_ner(models: Models, ner_model, words: list[list[str]], *, cache: Path, shard_size: int,
                  cache_stats: CacheStats, report: RunReport, progress: bool,
                  truncate: bool = False) -> tuple[list[list[Entity]], str]:
    """The NER model's entities on the receiving words (stage ``ner-receiving``): the
    model-transfer prediction and the ``ner`` candidates. ``truncate``: docs/compat.md (part
    of the cache key). Returns ``(entities, cache key)``."""
    fields = {"words": words_key(words), "tagger": models.tagger_fields(ner_model, truncate=truncate)}

    def compute(lo: int, hi: int):
        tagger = models.tagger(ner_model, truncate=truncate)
        with report.stage("ner-receiving.model"):
            ents, counts = tagged(tagger, words[lo:hi])
        return [{"entities": [list(e) for e in es]} for es in ents], {"tagger": counts}

    records, shard_stats, key = run_stage(cache, "ner-receiving", fields, len(words), compute,
                                          shard_size=shard_size, stats=cache_stats, report=report,
                                          progress=progress)
    report.encoder["ner-receiving"] = tagger_counts(shard_stats)
    return [[tuple(e) for e in r["entities"]] for r in records], key


_TAGGER_COUNTS = ("sentences", "words", "words_without_subwords", "windowed_sentences", "truncated_sentences",
                  "windows")


def tagged(tagger, words: list[list[str]]) -> tuple[list, dict]:
    """``tagger``'s entities of ``words`` and this call's counts (sentences, words, windowed
    and truncated sentences, ...), kept with a cached stage so reruns report them too."""
    before = tagger.stats.as_dict()
    ents = tagger.entities(words)
    after = tagger.stats.as_dict()
    return ents, {k: after[k] - before[k] for k in _TAGGER_COUNTS}


def tagger_counts(shard_stats: list[dict]) -> dict:
    """The tagger counts of a cached stage, summed over its shards (every key present)."""
    total = dict.fromkeys(_TAGGER_COUNTS, 0)
    for st in shard_stats:
        for k, v in st.get("tagger", {}).items():
            total[k] += v
    return total


# --------------------------------------------------------------------------- metrics


def describe(mode: str, align_method: str, method: str) -> dict[str, str]:
    """The reference CSV's descriptor columns of a pipeline variant.

    ``mode`` is ``src2tgt``, ``tgt2tgt`` or ``model_transfer``; ``method`` a projection method.
    """
    if mode == "model_transfer":
        return {"pipeline_type": "model_transfer", "aligner": "", "candidate_matching": "",
                "candidate_selection": ""}
    aligner = "awesome" if align_method == "softmax" else "simalign"
    if method == "heuristic":
        kind = "align_src" if mode == "src2tgt" else "align_tgt"
        return {"pipeline_type": kind, "aligner": aligner, "candidate_matching": "", "candidate_selection": ""}
    selection, matching = method.split("-")
    return {"pipeline_type": "candidates" if mode == "src2tgt" else "backtrans_candidates", "aligner": aligner,
            "candidate_matching": "argmax" if matching == "greedy" else matching,
            "candidate_selection": "dummy" if selection == "ngram" else selection}


def metrics_row(gold: list[list[str]], pred: list[list[str]], *, ignore: tuple[str, ...], lang: str,
                dataset: str, variant: dict[str, str], extra: dict | None = None) -> dict:
    """Scores (docs/evaluation.md) and ``proj_ratio`` plus the descriptor columns, as one CSV row."""
    from xfast.evaluate import ignore_types, proj_ratio, scores

    row = scores(gold, pred, ignore=ignore)
    row["proj_ratio"] = proj_ratio(ignore_types(gold, ignore), ignore_types(pred, ignore))
    row.update({"lang": lang, "task": "pipeline_eval", "eval_type": "compare_to_original", "dataset": dataset})
    row.update(variant)
    row.update(extra or {})
    return row


def write_labels(path: Path, words: list[list[str]], labels: list[list[str]]) -> None:
    """CoNLL ``word<TAB>label``, atomically."""
    from xfast.io import write_conll

    write_conll(path, zip(words, labels))


# --------------------------------------------------------------------------- pipeline


def model_transfer(input: str | Path, lang: str, out_dir: str | Path, *, ner_model="xlmr-large-conll03",
                   options: ModelOptions | None = None, cache: str | Path | None = None, shard_size: int = 256,
                   dataset: str = "", label_set: set[str] | None = None, ignore: tuple[str, ...] | None = None,
                   label_names: list[str] | None = None, limit: int | None = None, progress: bool = True,
                   compat: bool = False) -> dict:
    """Tag the receiving words with the NER model and write ``<lang>.model_transfer.conll``.

    ``ner_model``: registry name, local directory or a loaded Tagger. ``compat``: truncate
    sentences at the model's limit as the reference does (docs/translation.md). ``label_set``: types kept
    in the output (default: the gold data's); ``ignore``: types scored as O (default: DATE for
    MasakhaNER). Returns ``{"results", "timings", "qa", "outputs"}``; ``results`` holds one
    metrics row when the input has gold labels.
    """
    t0 = time.perf_counter()
    run = start_run(input, out_dir, options=options, cache=cache, shard_size=shard_size, label_set=label_set,
                    label_names=label_names, limit=limit, progress=progress)
    out, report, models, words, gold, keep = run.out, run.report, run.models, run.words, run.gold, run.keep
    ignore = default_ignore(dataset) if ignore is None else tuple(ignore)
    ents, key = receiving_ner(models, ner_model, words, truncate=compat, **run.common)
    from xfast.io import labels_of

    pred = map_label_set([labels_of(e, len(w)) for e, w in zip(ents, words)], keep)
    path = out / f"{lang}.model_transfer.conll"
    with report.stage("write"):
        write_labels(path, words, pred)
    report.sentences_out = len(words)
    results = []
    if gold is not None:
        with report.stage("evaluate"):
            results.append(metrics_row(gold, pred, ignore=ignore, lang=lang, dataset=dataset,
                                       variant=describe("model_transfer", "", ""),
                                       extra={"xfast_ner_model": models.describe(ner_model),
                                              "xfast_sentences": len(words)}))
        write_metrics_csv(out / "metrics.csv", results, dataset=dataset)
    report.timings["total"] = time.perf_counter() - t0
    qa = report.summary()
    qa["cache"] = run.cache_stats.as_dict()
    write_json(out / "qa.json", qa)
    write_json(out / "manifest.json", {
        "command": "model-transfer", "inputs": {str(input): file_sha256(input)}, "lang": lang,
        "ner_model": models.describe(ner_model), "options": models.options, "dataset": dataset,
        "label_set": sorted(keep) if keep is not None else None, "ignore": list(ignore),
        "cache": {"dir": str(run.cache), "stages": {"ner-receiving": key}}, "shard_size": shard_size,
        "versions": versions(), "outputs": {"model_transfer": str(path)}})
    return {"results": results, "timings": dict(report.timings), "qa": qa,
            "outputs": {"model_transfer": str(path)}}


# --------------------------------------------------------------------------- CLI


def add_common_arguments(p: argparse.ArgumentParser, *, train: bool = False) -> None:
    """Options every pipeline over a labeled file shares; ``train``: the input is English
    training data and ``--lang`` takes several target languages (no evaluation options).
    Every option shows its default in ``--help``."""
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    if train:
        p.add_argument("--input", required=True, help="labeled English data: CoNLL or JSONL {tokens, ner_tags}")
        p.add_argument("--lang", required=True, nargs="+", help="target languages (ISO 639 or FLORES-200 codes)")
    else:
        p.add_argument("--input", required=True,
                       help="test set: CoNLL (MasakhaNER .txt too) or JSONL {tokens, ner_tags}")
        p.add_argument("--lang", required=True, help="language of the input (ISO 639 or FLORES-200 code)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--ner-model", default="xlmr-large-conll03", help="registry name or local HF/ONNX directory")
    p.add_argument("--cache", default=None, help="stage cache directory (default: OUT/cache)")
    p.add_argument("--shard-size", type=int, default=256, help="sentences per cached shard")
    p.add_argument("--label-set", nargs="*", default=None, metavar="TYPE",
                   help="types kept in the output (default: the gold data's)")
    if not train:
        p.add_argument("--dataset", default="", help="dataset name in the metrics row (masakhaner2 ignores DATE)")
        p.add_argument("--ignore", nargs="*", default=None, metavar="TYPE",
                       help="types scored as O (default: DATE for masakhaner*, else none)")
    p.add_argument("--label-names", nargs="*", default=None, metavar="LABEL",
                   help="JSONL integer tag names in id order, e.g. O B-PER I-PER ...")
    p.add_argument("--limit", type=int, default=None, help="only the first N sentences")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="where the models run (auto: CUDA when present)")
    p.add_argument("--compute-type", default=None,
                   help="CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="threads per model (default: the runtime's)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def options_of(args: argparse.Namespace) -> ModelOptions:
    """:class:`ModelOptions` from parsed arguments."""
    return ModelOptions(device=args.device, compute_type=args.compute_type, threads=args.threads,
                        layer=getattr(args, "layer", 8), token_type=getattr(args, "token_type", "bpe"),
                        quantize=getattr(args, "quantize", None))


def print_result(res: dict, args: argparse.Namespace) -> int:
    """Print the metrics table (or one JSON object); 1 when some sentences failed, else 0."""
    from xfast.report import format_table

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xfast model-transfer`` options."""
    add_common_arguments(p)
    p.add_argument("--compat", action="store_true",
                   help="truncate long sentences at the model's limit, as the paper's code does")
    p.epilog = ("example: xfast model-transfer --input masakhaner2/hau.test.txt --lang hau "
                "--dataset masakhaner2 --out runs/hau-mt")


def main(args: argparse.Namespace) -> int:
    """Run ``xfast model-transfer``."""
    from xfast.models.flores import is_known

    if not is_known(args.lang):
        print(f"xfast: warning: {args.lang!r} is not a language code xfast knows; it only names the outputs "
              "and metrics rows here", file=sys.stderr)
    res = model_transfer(args.input, args.lang, args.out, ner_model=args.ner_model, options=options_of(args),
                         cache=args.cache, shard_size=args.shard_size, dataset=args.dataset,
                         label_set=set(args.label_set) if args.label_set is not None else None,
                         ignore=tuple(args.ignore) if args.ignore is not None else None,
                         label_names=args.label_names, limit=args.limit, progress=not args.quiet,
                         compat=args.compat)
    return print_result(res, args)
