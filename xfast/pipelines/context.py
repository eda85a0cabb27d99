"""What an NLLB pipeline run starts from: its input scanned and checked, its output folder
claimed (:class:`~xfast.pipelines.rundir.RunDir`), its report, models and stage context
(:func:`open_run`), the windows of its input (:meth:`Run.windows`) and outputs written window by
window (:class:`OutputFiles`), and the small helpers those pipelines share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import IO, TextIO

from xfast.errors import DataError, ParameterError, check_choice, msg
from xfast.io import read_any, read_jsonl
from xfast.io.conll import append_conll
from xfast.io.files import atomic_open, lines
from xfast.io.labels import Sentence
from xfast.io.readers import file_form, plain_text_reason, read_columns
from xfast.io.tokens import LabelTypes
from xfast.pipelines.engines.ray import RaySettings, RemoteStages
from xfast.pipelines.loaders import ModelOptions, Models
from xfast.pipelines.manifest import file_sha256, versions
from xfast.pipelines.qa import RunReport
from xfast.pipelines.rundir import RunDir, run_key
from xfast.pipelines.stagecache import CacheStats, StageBars, StageContext
from xfast.pipelines.stages.corpus import ListKey
from xfast.project.config import PROJECTION_METHODS

__all__ = ["Run", "Scan", "OutputFiles", "open_run", "test_set", "scan", "map_label_set", "write_labels", "MODES",
           "ALIGN_METHODS", "check_methods"]

#: translate-test's modes: tag the English translation, or back-translate with markers
MODES = ("src2tgt", "tgt2tgt")

#: word-alignment extraction methods (docs/alignment.md)
ALIGN_METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")

def test_set(path: str | Path, *, label_names: list[str] | None = None, limit: int | None = None) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL file (MasakhaNER ``.txt`` included), Hugging Face-style
    JSONL (``{"tokens", "ner_tags"}``; integer tags need ``label_names``) or Parquet (the same
    columns); labels where present; the first ``limit`` only when given."""
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
    return islice(sents, limit) if limit is not None else iter(sents)


def map_label_set(labels: list[list[str]], keep: set[str] | None) -> list[list[str]]:
    """Labels whose type is outside ``keep`` become ``O`` (docs/translation.md); ``None`` keeps all."""
    if keep is None:
        return labels
    return [[lab if lab == "O" or lab[2:] in keep else "O" for lab in s] for s in labels]


@dataclass(frozen=True)
class Scan:
    """What one pass over a run's input learns, holding one sentence at a time: the sentence
    count ``n``, the stage caches' root keys (:func:`~xfast.pipelines.stages.corpus.words_key`
    of the words, and of ``[words, labels]`` pairs: ``labeled_key``, None without labels), the
    gold data's entity types (None when some sentence has no labels) and whether some
    sentence has no labels (``unlabeled``)."""

    n: int
    words_key: str
    labeled_key: str | None
    types: set[str] | None
    unlabeled: bool


def scan(sentences: Iterable[Sentence]) -> Scan:
    """:class:`Scan` of ``sentences``."""
    words, pairs, types, n, unlabeled = ListKey(), ListKey(), set(), 0, False
    for s in sentences:
        n += 1
        words.add(s.tokens)
        if s.labels is None:
            unlabeled = True
        elif not unlabeled:
            pairs.add([s.tokens, s.labels])
            types.update(lab[2:] for lab in s.labels if lab != "O")
    return Scan(n, words.key(), None if unlabeled else pairs.key(), None if unlabeled else types, unlabeled)


@dataclass
class Run:
    """An NLLB pipeline run (:func:`open_run`): its output folder ``out`` (owned through
    ``folder``), the stage context every cached stage takes (``ctx``: cache, report, remote
    workers, the run's progress bars), its models, its run key, the types kept (``keep``) and
    what a first pass over the input learnt (``scan``); :meth:`windows` reads the input again,
    ``window`` sentences at a time."""

    out: Path
    ctx: StageContext
    models: Models
    scan: Scan
    keep: set[str] | None
    key: str
    folder: RunDir
    read: Callable[[], Iterator[Sentence]]
    window: int

    @property
    def report(self) -> RunReport:
        return self.ctx.report

    @property
    def n(self) -> int:
        """Sentences in the input."""
        return self.scan.n

    @property
    def gold(self) -> bool:
        """Whether every sentence has labels (the run is scored)."""
        return not self.scan.unlabeled

    def windows(self) -> Iterator[tuple[int, list[Sentence]]]:
        """``(start, sentences)`` of each window of :attr:`window` sentences (whole shards; the
        last may be shorter), ``start`` the first one's number in the input: a run holds one
        window of the input at a time."""
        held: list[Sentence] = []
        start = 0
        for s in self.read():
            held.append(s)
            if len(held) == self.window:
                yield start, held
                start, held = start + len(held), []
        if held:
            yield start, held

    def replay(self) -> StageContext:
        """The stage context of a second pass over stages that ran before: their shards load
        from the cache without counting in the run's cache counts, report or bars."""
        return replace(self.ctx, cache_stats=CacheStats(), report=RunReport(), progress=False, bars=None)

    def engine(self) -> dict:
        """Where the stages ran, for ``qa.json``: ``{"engine": "local"}``, or Ray's cluster."""
        if self.ctx.remote is None:
            return {"engine": "local"}
        return {"engine": "ray", **self.ctx.remote.describe()}

    def finish(self) -> None:
        """The run's outputs and summaries are written: drop its in-progress record (and stop
        a Ray cluster the run started)."""
        if self.ctx.bars is not None:
            self.ctx.bars.close()
        self.folder.close()
        if self.ctx.remote is not None:
            self.ctx.remote.close()


def open_run(input: str | Path, out_dir: str | Path, *, options: ModelOptions | None, cache: str | Path | None,
             shard_size: int, label_set: set[str] | None, label_names: list[str] | None, limit: int | None,
             progress: bool, command: str, settings: dict, overwrite: bool = False,
             ray: RaySettings | None = None, labels: bool = False) -> Run:
    """Scan ``input`` (stage ``read``: one pass, a sentence at a time; a bad input stops here,
    before anything is created; with ``labels``, an input without gold labels is one [E513]),
    then claim ``out_dir`` for this run (:class:`~xfast.pipelines.rundir.RunDir`: another run's
    outputs there are refused unless ``overwrite``) and set up the report, models and stage
    cache (default ``out_dir/cache``); ``keep`` is ``label_set``, else the gold data's types.
    ``settings``: what the outputs depend on besides the input, for the run's key. ``ray``:
    the cached stages' missing shards are worked on a Ray cluster (same outputs), a few
    shards at a time (:data:`~xfast.pipelines.engines.ray.RemoteStages.window_shards`); locally
    one shard at a time."""
    remote = None
    if ray is not None:
        remote = RemoteStages(ray, options or ModelOptions())  # a missing extra stops before any work

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(msg("E202", name="limit", expected="an int >= 1 (sentences to run on)", value=limit))
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ParameterError(msg("E202", name="shard_size", expected="an int >= 1", value=shard_size))
    out = Path(out_dir)
    report = RunReport()

    def read() -> Iterator[Sentence]:
        return test_set(input, label_names=label_names, limit=limit)

    with report.stage("read"):
        seen = scan(read())
    if not seen.n:
        raise DataError(input, None, msg("E512", path=input))
    if labels and seen.unlabeled:
        why = (f": the labeled side needs labels; {input} was read as plain text: {plain_text_reason(input)}"
               if file_form(input) == "text" else "")
        raise DataError(input, None, msg("E513", path=input, what=command) + why)
    key = run_key({"command": command, "input": file_sha256(input), "limit": limit, "label_names": label_names,
                   "label_set": sorted(label_set) if label_set is not None else None, "options": options,
                   "shard_size": shard_size, **settings, "versions": versions()})
    folder = RunDir(out, key, {}, overwrite=overwrite)
    folder.open()
    ctx = StageContext(Path(cache) if cache is not None else out / "cache", shard_size, CacheStats(), report,
                       progress, remote, StageBars(seen.n, progress))
    keep = label_set if label_set is not None else seen.types
    report.sentences_in = seen.n
    window = shard_size * (remote.window_shards if remote is not None else 1)
    return Run(out, ctx, Models(options, report), seen, keep, key, folder, read, window)


class OutputFiles:
    """A run's output files written window by window: each opened (:meth:`open`) under a
    temporary name in the run's in-progress folder (removed with it), appended to, and renamed
    into place when the ``with`` block ends without an error; a killed run leaves no partial
    file under an output's name."""

    def __init__(self, run: Run) -> None:
        self._tmp = run.folder.state_dir
        self._stack = ExitStack()

    def open(self, path: Path, mode: str = "w") -> IO:
        """The open file of output ``path`` (``"w"`` text, ``"wb"`` bytes)."""
        return self._stack.enter_context(atomic_open(path, mode, tmp_dir=self._tmp))

    def __enter__(self) -> OutputFiles:
        self._stack.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)


def write_labels(fh: TextIO, words: list[list[str]], labels: list[list[str]]) -> None:
    """Append CoNLL ``word<TAB>label`` sentences to an output file."""
    append_conll(fh, zip(words, labels))


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
