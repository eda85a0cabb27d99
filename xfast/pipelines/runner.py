"""What every pipeline shares: projection methods over a batch, label-set mapping, the run
report (QA counts, timings) and the manifest; the models a run loads, its set-up from a
labeled input, metrics rows, and the command-line options the NLLB pipelines share.

A pipeline is a short loop over chunks of sentences; each stage is a function from a batch to a
batch, and every failure is counted here under a reason, never dropped silently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from xfast import __version__
from xfast.errors import DataError, ParameterError, XfastError, check_choice, msg
from xfast.io.files import atomic_open
from xfast.pipelines.cache import CacheStats, model_fingerprint
from xfast.pipelines.ray_engine import RaySettings

__all__ = ["PROJECTION_METHODS", "ProjectionConfig", "RunReport", "project_batch", "map_label_set",
           "file_sha256", "write_json", "chunks", "versions", "ModelOptions", "Models", "Run", "start_run",
           "read_test_set", "words_key", "label_set_of", "default_ignore", "describe", "metrics_row",
           "write_labels", "add_common_arguments", "add_projection_arguments", "options_of", "config_of",
           "print_result", "check_methods", "MODES", "ALIGN_METHODS", "add_device_argument",
           "add_encoder_arguments", "aligner_kwargs_of", "pipeline_aligner", "default_align_methods",
           "align_languages", "add_filter_argument"]

PROJECTION_METHODS = ("heuristic", "ngram-greedy", "ngram-bipartite", "ner-greedy", "ner-bipartite")

Entity = tuple[int, int, str]


@dataclass(frozen=True)
class ProjectionConfig:
    """Projection settings with docs/projection.md defaults (frozen: hashable, safe to share)."""

    length_ratio: float = 0.8
    merge_distance: int = 1
    min_words: int = 1
    max_words: int = 0
    stop_words: tuple[str, ...] = ("!", "?")
    sub_spans: bool = False
    compat: bool = False

    def check(self) -> ProjectionConfig:
        """This config, or :class:`ParameterError` [E202] for a ``length_ratio`` outside (0, 1]
        (a span is kept when it covers more than that share of its entity: 0 keeps every span,
        above 1 none)."""
        ratio = self.length_ratio
        try:
            ok = not isinstance(ratio, bool) and 0 < float(ratio) <= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(msg("E202", name="length_ratio", expected="a number in (0, 1], e.g. 0.8",
                                     value=ratio))
        return self


_MAX_LISTED = 1000  # failures listed one by one in qa.json; every one is counted


@dataclass
class RunReport:
    """QA counts and stage timings of one run; every stage appends to it.

    ``failed`` lists the first 1,000 failed sentences with their reasons; ``failed_total``
    and ``failed_reasons`` count all of them. :meth:`state` / :meth:`from_state` carry the
    counts (not the timings, which belong to one process) through JSON for resumable runs.
    """

    sentences_in: int = 0
    sentences_out: int = 0
    failed: list[dict] = field(default_factory=list)
    failed_total: int = 0
    failed_reasons: Counter = field(default_factory=Counter)
    entities: dict = field(default_factory=lambda: defaultdict(Counter))
    projection: dict = field(default_factory=lambda: defaultdict(Counter))
    encoder: dict = field(default_factory=dict)
    filter: dict = field(default_factory=lambda: defaultdict(Counter))
    timings: dict = field(default_factory=lambda: defaultdict(float))
    _open: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``timings[name]``, less the time of the
        stages opened inside it (in the same thread): timings are exclusive, so they add up
        to the run's wall time and no stage hides another."""
        stack = getattr(self._open, "stack", None)
        if stack is None:
            stack = self._open.stack = []
        inner = [0.0]
        stack.append(inner)
        t = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t
            stack.pop()
            self.timings[name] += elapsed - inner[0]
            if stack:
                stack[-1][0] += elapsed

    def fail(self, where: str, index: int, reason: str) -> None:
        """Count one failed sentence with its reason."""
        self.failed_total += 1
        self.failed_reasons[reason.split(":")[0]] += 1
        if len(self.failed) < _MAX_LISTED:
            self.failed.append({"where": where, "sentence": index, "reason": reason})

    def summary(self) -> dict:
        """A JSON-ready summary: sentences in/out/failed, per-label entity counts, reasons."""
        return {
            "sentences": {"in": self.sentences_in, "out": self.sentences_out,
                          "failed": self.failed_total, "failed_by_reason": dict(self.failed_reasons)},
            "failures": self.failed[:_MAX_LISTED],
            "entities": {k: _every_count(v) for k, v in sorted(self.entities.items())},
            "projection": {k: dict(sorted(v.items())) for k, v in sorted(self.projection.items())},
            "encoder": self.encoder,
            **({"filter": {k: _filter_counts(v) for k, v in sorted(self.filter.items())}} if self.filter else {}),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def filtered(self, key: str, kept: int, dropped: dict[str, int], spans_removed: int) -> None:
        """Count one batch of output ``key`` through ``--filter``: sentences ``kept``, sentences
        ``dropped`` per reason, spans that ``min-score`` removed (docs/qa.md)."""
        counter = self.filter[key]
        counter["kept"] += kept
        for reason, n in dropped.items():
            counter[f"dropped:{reason}"] += n
        counter["spans_removed_by_min_score"] += spans_removed

    def state(self) -> dict:
        """The counts as plain JSON (no timings)."""
        out = self.summary()
        del out["timings_s"]
        return out

    def load_state(self, state: dict) -> None:
        """Continue from counts saved by :meth:`state`."""
        sents = state["sentences"]
        self.sentences_in, self.sentences_out = sents["in"], sents["out"]
        self.failed_total, self.failed_reasons = sents["failed"], Counter(sents["failed_by_reason"])
        self.failed = list(state["failures"])
        self.entities = defaultdict(Counter, {k: Counter(v) for k, v in state["entities"].items()})
        self.projection = defaultdict(Counter, {k: Counter(v) for k, v in state["projection"].items()})
        self.encoder = dict(state["encoder"])
        self.filter = defaultdict(Counter, {k: _filter_state(v) for k, v in state.get("filter", {}).items()})

    def merge(self, state: dict) -> None:
        """Add the counts of another report's :meth:`state` (a shard worked in another
        process) after this report's own; failures keep their order."""
        sents = state["sentences"]
        self.sentences_in += sents["in"]
        self.sentences_out += sents["out"]
        self.failed_total += sents["failed"]
        self.failed_reasons.update(sents["failed_by_reason"])
        self.failed.extend(state["failures"][:max(0, _MAX_LISTED - len(self.failed))])
        for k, v in state["entities"].items():
            self.entities[k].update(v)
        for k, v in state["projection"].items():
            self.projection[k].update(v)
        for k, v in state["encoder"].items():
            self.encoder[k] = self.encoder.get(k, 0) + v
        for k, v in state.get("filter", {}).items():
            self.filter[k].update(_filter_state(v))


def _filter_counts(counts: Counter) -> dict:
    """One output's ``--filter`` counts as ``qa.json`` shows them (every reason present)."""
    from xfast.project.filtering import REASONS

    by_reason = {r: counts.get(f"dropped:{r}", 0) for r in REASONS[1:]}
    return {"kept": counts.get("kept", 0), "dropped": sum(by_reason.values()), "dropped_by_reason": by_reason,
            "spans_removed_by_min_score": counts.get("spans_removed_by_min_score", 0)}


def _filter_state(shown: dict) -> Counter:
    """The counter behind :func:`_filter_counts`' form."""
    out = Counter({"kept": shown["kept"], "spans_removed_by_min_score": shown["spans_removed_by_min_score"]})
    out.update({f"dropped:{r}": n for r, n in shown["dropped_by_reason"].items()})
    return out


def _every_count(counts: Counter) -> dict:
    """``TYPE:what`` counts with every type and every kind present (zeros included), sorted."""
    types = {k.split(":", 1)[0] for k in counts}
    kinds = ("in", "out", "removed_by_label_set")
    return {f"{t}:{w}": counts.get(f"{t}:{w}", 0) for t in sorted(types) for w in kinds}


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def map_label_set(labels: list[list[str]], keep: set[str] | None) -> list[list[str]]:
    """Labels whose type is outside ``keep`` become ``O`` (docs/translation.md); ``None`` keeps all."""
    if keep is None:
        return labels
    return [[lab if lab == "O" or lab[2:] in keep else "O" for lab in s] for s in labels]


def _count_entities(report: RunReport, key: str, entities: Sequence[Sequence[Entity]],
                    projected: Sequence[Sequence[str]], written: Sequence[Sequence[str]]) -> None:
    """QA per type: labeled entities in, entities written out (after the label set), and
    projected entities the label set removed."""
    src = report.entities[key]
    for ents, before, after in zip(entities, projected, written):
        for _, _, t in ents:
            src[f"{t}:in"] += 1
        for lab_b, lab_a in zip(before, after):
            if lab_b.startswith("B-"):
                src[f"{lab_b[2:]}:out" if lab_a.startswith("B-") else f"{lab_b[2:]}:removed_by_label_set"] += 1


def project_batch(method: str, entities: Sequence[Sequence[Entity]], alignments: Sequence[np.ndarray],
                  receiving: Sequence[Sequence[str]], cfg: ProjectionConfig, report: RunReport, *,
                  key: str, candidates: Sequence[Sequence[tuple[int, int]]] | None = None,
                  offset: int = 0, keep: set[str] | None = None) -> list[list[str]]:
    """Project one batch with ``method``, then keep the types in ``keep`` (None: all;
    docs/translation.md); failures fall back to per-sentence runs and are counted.

    ``key`` names the run in the report (e.g. ``"de/heuristic"``); ``offset`` is the batch's
    first sentence index, so failures name corpus positions.
    """
    check_choice("method", method, PROJECTION_METHODS)
    from xfast import project as P

    n_rec = [len(w) for w in receiving]

    def run(idx: Sequence[int]):
        ents = [entities[i] for i in idx]
        alns = [alignments[i] for i in idx]
        nr = [n_rec[i] for i in idx]
        if method == "heuristic":
            return P.heuristic_batch(ents, alns, nr, length_ratio=cfg.length_ratio,
                                     merge_distance=cfg.merge_distance, compat=cfg.compat,
                                     return_stats=True)
        kind, matching = method.split("-")
        if kind == "ngram":
            cands = P.ngram_candidates_batch([receiving[i] for i in idx], min_words=cfg.min_words,
                                             max_words=cfg.max_words, stop_words=cfg.stop_words)
            cands = [cands[k] for k in range(len(idx))]
        else:
            if candidates is None:
                raise XfastError(f"method {method!r} needs NER candidates for the receiving side")
            cands = [P.ner_candidates(candidates[i], sub_spans=cfg.sub_spans) for i in idx]
        return P.match_batch(ents, cands, alns, nr, method=matching, compat=cfg.compat,
                             return_stats=True)

    everything = list(range(len(receiving)))
    try:
        labels, stats = run(everything)
        _add_stats(report, key, stats)
    except XfastError:
        labels = []
        for i in everything:
            try:
                lab, stats = run([i])
                labels.extend(lab)
                _add_stats(report, key, stats)
            except XfastError as err:
                report.fail(key, offset + i, "projection: " + str(err).replace("[E303] sentence 0: ", "[E303] "))
                labels.append(["O"] * n_rec[i])
    written = map_label_set(labels, keep)
    _count_entities(report, key, entities, labels, written)
    return written


def _add_stats(report: RunReport, key: str, stats) -> None:
    report.projection[key].update(stats.as_dict())  # zeros too: the same keys in every run


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Versions of xfast, Python and the packages that decide results."""
    out = {"xfast": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "onnxruntime", "ctranslate2", "tokenizers", "transformers", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_json(path: str | Path, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=1, default=_jsonable)
        fh.write("\n")


def _jsonable(obj: object):
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


# --------------------------------------------------------------------------- run set-up and CLI options shared by the NLLB pipelines


@dataclass
class ModelOptions:
    """How models run: device, CTranslate2 compute type, threads, and the aligner's encoder
    settings (layer, token type, int8 quantization)."""

    device: str = "cpu"
    compute_type: str | None = None
    threads: int | None = None
    layer: int | None = None
    token_type: str = "bpe"
    quantize: str | None = None


class Models:
    """Models named by registry name or directory, or given as loaded objects, loaded on first
    use (a fully cached rerun loads nothing) and shared between stages that name the same one.

    ``*_fields`` describe a model for cache keys without loading it. A loaded object keeps its
    own settings (a Tagger's ``truncate``, an Aligner's ``compat``).

    One checkpoint named both as translator and as aligner (``--aligner translator``) is held
    once at a time: loading one of the two releases the other (the stages that use them run
    one after the other).
    """

    def __init__(self, options: ModelOptions | None = None, report: RunReport | None = None) -> None:
        self.options = options or ModelOptions()
        self.report = report
        self._loaded: dict[tuple, object] = {}
        self._released: dict[str, dict] = {}  # counts of released aligners, for runtime_stats

    def _get(self, kind: str, spec: object, build, variant: str = ""):
        if not isinstance(spec, (str, Path)):
            self._loaded.setdefault((kind, self.describe(spec)), spec)
            return spec
        key = (kind, str(spec) + variant)
        if key not in self._loaded:
            self._release_twin(kind, str(spec))
            if self.report is None:
                self._loaded[key] = build()
            else:
                with self.report.stage(f"load {kind}"):
                    self._loaded[key] = build()
        return self._loaded[key]

    def _providers(self) -> list[str]:
        """ONNX Runtime providers for ``--device`` (:func:`~xfast.models.encoder.providers_for`)."""
        from xfast.models.encoder import providers_for

        return providers_for(self.options.device)

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

    def _release_twin(self, kind: str, spec: str) -> None:
        """Drop the translator when its checkpoint's encoder is about to load as aligner, and the
        other way round (keeping the released aligner's counts)."""
        if kind not in ("translator", "aligner"):
            return
        for key in [k for k in self._loaded if k[0] != kind and k[0] in ("translator", "aligner")
                    and k[1].split(" (")[0] == spec]:
            obj = self._loaded.pop(key)
            if key[0] == "aligner":
                _add_counts(self._released.setdefault(f"aligner:{key[1]}", {}), obj.stats)

    def runtime_stats(self) -> dict:
        """Counts of the models this run loaded (encoder, tagger), for the QA summary."""
        out = {k: dict(v) for k, v in self._released.items()}
        for (kind, name), obj in self._loaded.items():
            st = obj.stats
            if kind != "translator":  # translator counts come from the cache shards
                _add_counts(out.setdefault(f"{kind}:{name}", {}), st.as_dict() if hasattr(st, "as_dict") else st)
        return out

    def describe(self, spec) -> str:
        """A model's name for reports: the registry name or the directory."""
        return describe_model(spec)


def _add_counts(into: dict, counts) -> None:
    for k, v in dict(counts).items():
        into[k] = into[k] + v if k in into and isinstance(v, (int, float)) else v


def read_test_set(path: str | Path, *, label_names: list[str] | None = None, limit: int | None = None) -> list:
    """Sentences of a CoNLL file (MasakhaNER ``.txt`` included), Hugging Face-style JSONL
    (``{"tokens", "ner_tags"}``; integer tags need ``label_names``) or Parquet (the same
    columns); labels where present."""
    from itertools import islice

    from xfast.io import read_any, read_jsonl

    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        from xfast.io.files import lines

        first = next((t for _, t in lines(path) if t.strip()), "")
        has_tags = '"ner_tags"' in first
        sents = read_jsonl(path, label_names=label_names, labels=has_tags)
    elif path.suffix.lower() == ".parquet":
        from xfast.io.columns import LabelTypes, read_columns

        types = LabelTypes()
        sents = (s for cols in read_columns(path, types=types) for s in cols.to_sentences(types))
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
    key: str
    folder: object  # the RunDir that owns ``out``; ``finish()`` when the outputs are written
    remote: object = None  # RemoteStages when the cached stages run on Ray

    def engine(self) -> dict:
        """Where the stages ran, for ``qa.json``: ``{"engine": "local"}``, or Ray's cluster."""
        if self.remote is None:
            return {"engine": "local"}
        return {"engine": "ray", **self.remote.describe()}

    def finish(self) -> None:
        """The run's outputs and summaries are written: drop its in-progress record (and stop
        a Ray cluster the run started)."""
        self.folder.close()
        if self.remote is not None:
            self.remote.close()


def describe_model(spec) -> str:
    """A model's name for reports and run keys: the registry name or the directory."""
    if isinstance(spec, (str, Path)):
        return str(spec)
    return str(getattr(spec, "model_dir", None) or getattr(spec, "settings", {}).get("model") or spec)


def start_run(input: str | Path, out_dir: str | Path, *, options: ModelOptions | None, cache: str | Path | None,
              shard_size: int, label_set: set[str] | None, label_names: list[str] | None, limit: int | None,
              progress: bool, command: str, settings: dict, overwrite: bool = False,
              ray: RaySettings | None = None, labels: bool = False) -> Run:
    """Read ``input`` (stage ``read``; a bad input stops here, before anything is created;
    with ``labels``, an input without gold labels is one [E513]),
    then claim ``out_dir`` for this run (:class:`~xfast.pipelines.run.RunDir`: another run's
    outputs there are refused unless ``overwrite``) and set up the report, models and stage
    cache (default ``out_dir/cache``); ``keep`` is ``label_set``, else the gold data's types.
    ``settings``: what the outputs depend on besides the input, for the run's key. ``ray``:
    the cached stages' missing shards are worked on a Ray cluster (same outputs)."""
    from xfast.pipelines.run import RunDir, run_key

    remote = None
    if ray is not None:
        from xfast.pipelines.ray_engine import RemoteStages

        remote = RemoteStages(ray, options or ModelOptions())  # a missing extra stops before any work

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    out = Path(out_dir)
    report = RunReport()
    with report.stage("read"):
        sents = read_test_set(input, label_names=label_names, limit=limit)
    if labels and any(s.labels is None for s in sents):
        from xfast.io.readers import file_form, plain_text_reason

        why = (f": the labeled side needs labels; {input} was read as plain text: {plain_text_reason(input)}"
               if file_form(input) == "text" else "")
        raise DataError(input, None, msg("E513", path=input, what=command) + why)
    key = run_key({"command": command, "input": file_sha256(input), "limit": limit, "label_names": label_names,
                   "label_set": sorted(label_set) if label_set is not None else None, "options": options,
                   "shard_size": shard_size, **settings, "versions": versions()})
    folder = RunDir(out, key, {}, overwrite=overwrite)
    folder.open()
    root = Path(cache) if cache is not None else out / "cache"
    models = Models(options, report)
    cstats = CacheStats()
    common = dict(cache=root, shard_size=shard_size, cache_stats=cstats, report=report, progress=progress,
                  remote=remote)
    words = [s.tokens for s in sents]
    gold = [s.labels for s in sents] if all(s.labels is not None for s in sents) else None
    keep = label_set if label_set is not None else label_set_of(gold)
    report.sentences_in = len(words)
    return Run(out, root, report, models, cstats, common, sents, words, gold, keep, key, folder, remote)


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


def add_common_arguments(p: argparse.ArgumentParser, *, train: bool = False) -> None:
    """Options every pipeline over a labeled file shares; ``train``: the input is English
    training data and ``--lang`` takes several target languages (no evaluation options).
    Every option shows its default in ``--help``."""
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
    from xfast.models.encoder import DEVICES

    p.add_argument("--device", default=default, choices=DEVICES,
                   help=f"{where} (auto: CUDA when ONNX Runtime has it)")


def pipeline_aligner(aligner, translator):
    """The aligner a translating pipeline uses: ``"translator"`` names the translating
    checkpoint itself (a loaded Translator: its model directory), whose encoder then aligns
    (docs/alignment.md); anything else as given."""
    if not (isinstance(aligner, str) and aligner == "translator"):
        return aligner
    if isinstance(translator, (str, Path)):
        return translator
    if getattr(translator, "model_dir", None) is None:
        raise ParameterError(msg("E202", name="aligner", expected="'translator' with a translator name, directory "
                                 "or Translator", value=type(translator).__name__))
    return translator.model_dir


def default_align_methods(aligner) -> tuple[str, ...]:
    """Extraction methods when none are asked for: a loaded Aligner's own, ``softmax`` for a
    translator's encoder, else ``itermax``."""
    from xfast.models.encoder import takes_language

    if hasattr(aligner, "method"):
        return (aligner.method,)
    return ("softmax",) if takes_language(aligner) else ("itermax",)


def align_languages(aligner, labeled: str, receiving: str) -> tuple[str, str] | None:
    """The two sides' FLORES-200 codes for an aligner that reads them (a translator's encoder),
    else None."""
    from xfast.models.encoder import takes_language
    from xfast.models.flores import flores_code

    return (flores_code(labeled), flores_code(receiving)) if takes_language(aligner) else None


_ALIGNER_HELP = ("registry name, local Hugging Face directory or ONNX export; an NLLB-200 checkpoint aligns "
                 "with its encoder")
_LAYER_HELP = "encoder layer whose states are compared (default: the registry's for the model, an NLLB encoder's last, " \
              "else 8)"
_ALIGN_METHOD_HELP = ("alignment extraction: SimAlign itermax/inter/fwd/rev/mwmf, AWESoME softmax (default: softmax "
                      "for an NLLB encoder, else itermax)")


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    """The aligner's model options of the commands that align with one encoder (``project``,
    ``serve``): ``--aligner``, ``--layer``, ``--align-method``, ``--quantize``, ``--device``,
    ``--threads``; :func:`aligner_kwargs_of` turns them into :class:`~xfast.aligner.Aligner`
    arguments."""
    p.add_argument("--aligner", default="e5-small", help=_ALIGNER_HELP)
    p.add_argument("--layer", type=int, default=None, help=_LAYER_HELP)
    p.add_argument("--align-method", default=None, choices=ALIGN_METHODS, help=_ALIGN_METHOD_HELP)
    p.add_argument("--quantize", choices=["int8", "float16"], default=None,
                   help="run the int8 encoder (CPU) or the float16 one (GPU)")
    add_device_argument(p, default="auto", where="where the encoder runs")
    p.add_argument("--threads", type=int, default=None, help="encoder threads (default: the runtime's)")


def aligner_kwargs_of(args: argparse.Namespace) -> dict:
    """:class:`~xfast.aligner.Aligner` arguments of :func:`add_encoder_arguments`' options
    (``--device`` stays with the caller: under Ray each actor resolves it)."""
    return dict(model=args.aligner, layer=args.layer, method=args.align_method, quantize=args.quantize,
                threads=args.threads)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray options, shared by every pipeline command (docs/ray.md)."""
    from xfast.pipelines.ray_engine import ENGINES

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


MODES = ("src2tgt", "tgt2tgt")


ALIGN_METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")


def check_methods(methods, align_methods, modes, token_type: str) -> None:
    if not modes:
        raise ParameterError(msg("E202", name="modes", expected=f"one or more of {list(MODES)}", value=modes))
    for m in modes:
        check_choice("modes", m, MODES)
    for m in methods:
        check_choice("methods", m, PROJECTION_METHODS)
    if not align_methods:
        raise ParameterError(msg("E202", name="align_methods", expected=f"one or more of {list(ALIGN_METHODS)}",
                                 value=align_methods))
    for m in align_methods:
        check_choice("align_methods", m, ALIGN_METHODS)
    if "softmax" in align_methods and token_type != "bpe":
        raise ParameterError(msg("E202", name="token_type", expected="'bpe' with align method 'softmax'",
                                 value=token_type))


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
    p.add_argument("--quantize", choices=["int8", "float16"], default=None,
                   help="aligner encoder: int8 (CPU) or float16 (GPU)")
    p.add_argument("--length-ratio", type=float, default=0.8,
                   help="heuristic: keep a span longer than this share of its entity, in (0, 1]")
    p.add_argument("--merge-distance", type=int, default=1, help="heuristic: merge spans this close (0: never)")
    p.add_argument("--min-words", type=int, default=1, help="n-gram candidates: fewest words")
    p.add_argument("--max-words", type=int, default=0, help="n-gram candidates: most words (0: the sentence)")
    p.add_argument("--sub-spans", action="store_true", help="ner candidates: every sub-span too")
    p.add_argument("--compat", action="store_true", help="reproduce the paper's code's quirks (see docs)")


def config_of(args: argparse.Namespace) -> ProjectionConfig:
    """:class:`ProjectionConfig` from parsed arguments."""
    return ProjectionConfig(length_ratio=args.length_ratio, merge_distance=args.merge_distance,
                            min_words=args.min_words, max_words=args.max_words, sub_spans=args.sub_spans,
                            compat=args.compat)
