"""What an NLLB pipeline run starts from: its input read and checked, its output folder claimed
(:class:`~xfast.pipelines.rundir.RunDir`), its report, models and stage context
(:func:`open_run`), and the small helpers those pipelines share.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from xfast.errors import DataError, ParameterError, check_choice, msg
from xfast.io import read_any, read_jsonl, write_conll
from xfast.io.files import lines
from xfast.io.readers import file_form, plain_text_reason, read_columns
from xfast.io.tokens import LabelTypes
from xfast.pipelines.engines.ray import RaySettings, RemoteStages
from xfast.pipelines.loaders import ModelOptions, Models
from xfast.pipelines.manifest import file_sha256, versions
from xfast.pipelines.qa import RunReport
from xfast.pipelines.rundir import RunDir, run_key
from xfast.pipelines.stagecache import CacheStats, StageContext
from xfast.project.config import PROJECTION_METHODS

__all__ = ["Run", "open_run", "read_test_set", "label_set_of", "map_label_set", "write_labels", "MODES",
           "ALIGN_METHODS", "check_methods"]

#: translate-test's modes: tag the English translation, or back-translate with markers
MODES = ("src2tgt", "tgt2tgt")

#: word-alignment extraction methods (docs/alignment.md)
ALIGN_METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")

def read_test_set(path: str | Path, *, label_names: list[str] | None = None, limit: int | None = None) -> list:
    """Sentences of a CoNLL file (MasakhaNER ``.txt`` included), Hugging Face-style JSONL
    (``{"tokens", "ner_tags"}``; integer tags need ``label_names``) or Parquet (the same
    columns); labels where present."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        first = next((t for _, t in lines(path) if t.strip()), "")
        has_tags = '"ner_tags"' in first
        sents = read_jsonl(path, label_names=label_names, labels=has_tags)
    elif path.suffix.lower() == ".parquet":
        types = LabelTypes()
        sents = (s for cols in read_columns(path, types=types) for s in cols.to_sentences(types))
    else:
        sents = read_any(path)
    out = list(islice(sents, limit)) if limit is not None else list(sents)
    if not out:
        raise DataError(path, None, msg("E512", path=path))
    return out


def label_set_of(gold: list[list[str]] | None) -> set[str] | None:
    """Entity types of the gold data (docs/translation.md), or None without gold."""
    if gold is None:
        return None
    return {lab[2:] for s in gold for lab in s if lab != "O"}


def map_label_set(labels: list[list[str]], keep: set[str] | None) -> list[list[str]]:
    """Labels whose type is outside ``keep`` become ``O`` (docs/translation.md); ``None`` keeps all."""
    if keep is None:
        return labels
    return [[lab if lab == "O" or lab[2:] in keep else "O" for lab in s] for s in labels]


@dataclass
class Run:
    """An NLLB pipeline run (:func:`open_run`): its output folder ``out`` (owned through
    ``folder``), the stage context every cached stage takes (``ctx``: cache, report, remote
    workers), its models, its run key and the input read: ``sents``, ``words``, ``gold`` (the
    labels, or None when some sentence has none) and ``keep`` (the types kept)."""

    out: Path
    ctx: StageContext
    models: Models
    sents: list
    words: list[list[str]]
    gold: list[list[str]] | None
    keep: set[str] | None
    key: str
    folder: RunDir

    @property
    def report(self) -> RunReport:
        return self.ctx.report

    def engine(self) -> dict:
        """Where the stages ran, for ``qa.json``: ``{"engine": "local"}``, or Ray's cluster."""
        if self.ctx.remote is None:
            return {"engine": "local"}
        return {"engine": "ray", **self.ctx.remote.describe()}

    def finish(self) -> None:
        """The run's outputs and summaries are written: drop its in-progress record (and stop
        a Ray cluster the run started)."""
        self.folder.close()
        if self.ctx.remote is not None:
            self.ctx.remote.close()


def open_run(input: str | Path, out_dir: str | Path, *, options: ModelOptions | None, cache: str | Path | None,
             shard_size: int, label_set: set[str] | None, label_names: list[str] | None, limit: int | None,
             progress: bool, command: str, settings: dict, overwrite: bool = False,
             ray: RaySettings | None = None, labels: bool = False) -> Run:
    """Read ``input`` (stage ``read``; a bad input stops here, before anything is created;
    with ``labels``, an input without gold labels is one [E513]),
    then claim ``out_dir`` for this run (:class:`~xfast.pipelines.rundir.RunDir`: another run's
    outputs there are refused unless ``overwrite``) and set up the report, models and stage
    cache (default ``out_dir/cache``); ``keep`` is ``label_set``, else the gold data's types.
    ``settings``: what the outputs depend on besides the input, for the run's key. ``ray``:
    the cached stages' missing shards are worked on a Ray cluster (same outputs)."""
    remote = None
    if ray is not None:
        remote = RemoteStages(ray, options or ModelOptions())  # a missing extra stops before any work

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    out = Path(out_dir)
    report = RunReport()
    with report.stage("read"):
        sents = read_test_set(input, label_names=label_names, limit=limit)
    if labels and any(s.labels is None for s in sents):
        why = (f": the labeled side needs labels; {input} was read as plain text: {plain_text_reason(input)}"
               if file_form(input) == "text" else "")
        raise DataError(input, None, msg("E513", path=input, what=command) + why)
    key = run_key({"command": command, "input": file_sha256(input), "limit": limit, "label_names": label_names,
                   "label_set": sorted(label_set) if label_set is not None else None, "options": options,
                   "shard_size": shard_size, **settings, "versions": versions()})
    folder = RunDir(out, key, {}, overwrite=overwrite)
    folder.open()
    ctx = StageContext(Path(cache) if cache is not None else out / "cache", shard_size, CacheStats(), report,
                       progress, remote)
    words = [s.tokens for s in sents]
    gold = [s.labels for s in sents] if all(s.labels is not None for s in sents) else None
    keep = label_set if label_set is not None else label_set_of(gold)
    report.sentences_in = len(words)
    return Run(out, ctx, Models(options, report), sents, words, gold, keep, key, folder)


def write_labels(path: Path, words: list[list[str]], labels: list[list[str]]) -> None:
    """CoNLL ``word<TAB>label``, atomically."""
    write_conll(path, zip(words, labels))


def check_methods(methods, align_methods, modes, token_type: str) -> None:
    """Raise :class:`ParameterError` for an unknown mode, projection or extraction method, or softmax
    with word tokens."""
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
