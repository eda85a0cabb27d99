"""Every read, count and check of an input file, by its form: the one dispatch of :mod:`xfast.io`.

The form of a file is its suffix (:func:`file_form`): ``.jsonl`` is JSON Lines, ``.parquet``
Parquet, ``.arrow`` Arrow (IPC, as ``datasets`` saves), ``.tok`` and ``.text`` plain text (one
sentence per line), ``.txt`` CoNLL when its first lines end in labels (as MasakhaNER ships it)
and plain text otherwise, anything else CoNLL. An input may also be several shards read one
after the other (:func:`input_files`): a folder of Parquet files, a ``save_to_disk`` folder
(its Arrow files), or a glob pattern (``shards/*.parquet``). Each form is read by its own
module (:mod:`~xfast.io.conll`, :mod:`~xfast.io.jsonl`, :mod:`~xfast.io.parquet`); this module
picks one and streams:

- sentences: :func:`read_any`, and line-aligned files in lockstep with :func:`read_parallel`;
- columnar batches (:class:`~xfast.io.tokens.TokenColumns`): :func:`read_columns` and
  :func:`read_parallel_columns`;
- checks before any work: :func:`count_sentences`, :func:`check_parallel`.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.errors import short as shortened
from xfast.io.conll import BLOCK, count_conll, read_conll, read_conll_pieces, read_text
from xfast.io.files import lines
from xfast.io.jsonl import count_jsonl, read_jsonl, read_jsonl_pieces
from xfast.io.labels import Sentence
from xfast.io.parquet import class_label_names, count_parquet, read_parquet_pieces
from xfast.io.tokens import LabelTypes, TokenColumns, head, rechunk

__all__ = ["file_form", "input_files", "looks_like_conll", "plain_text_error", "plain_text_reason",
           "read_any", "read_parallel", "read_columns", "read_parallel_columns",
           "count_sentences", "check_parallel", "output_label_names"]

#: the forms whose inputs may be several shards (a folder or a glob pattern)
SHARDED = (".parquet", ".arrow")


def _natural(path: Path) -> list:
    """Sort key: the path with its runs of digits compared as numbers (``part-2`` before ``part-10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _is_pattern(path: Path) -> bool:
    return not path.exists() and any(c in str(path) for c in "*?[")


def input_files(path: str | Path) -> list[Path]:
    """The files input ``path`` stands for, in reading order.

    A file (or a path that does not exist: reading it says so) stands for itself. A folder
    stands for its Parquet files; a folder ``Dataset.save_to_disk`` wrote, for the Arrow files
    its ``state.json`` lists, in that order; any other folder of ``.arrow`` files, for those. A
    glob pattern (``*``, ``?``, ``[...]``, ``**`` for any depth) stands for the files it
    matches, all Parquet or all Arrow. Folders and patterns are read in the order of their
    names with numbers compared as numbers, so ``train-00000-of-00004.parquet`` (``to_parquet``
    shards, the Hub's layout) and ``part-2`` before ``part-10`` both come in order.
    Otherwise a :class:`DataError`: [E121] a pattern that matches nothing, [E122] a folder with
    no shards, [E123] a ``DatasetDict`` folder (which split?), [E124] shards of mixed or other
    forms, [E125] a ``state.json`` that names a missing file.
    """
    path = Path(path)
    if path.is_dir():
        return _folder(path)
    if not _is_pattern(path):
        return [path]
    found = sorted((Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()), key=_natural)
    if not found:
        raise DataError(path, None, msg("E121"))
    suffixes = sorted({p.suffix.lower() for p in found})
    if len(suffixes) > 1 or suffixes[0] not in SHARDED:
        raise DataError(path, None, msg("E124", found=", ".join(s or "no suffix" for s in suffixes)))
    return found


def _folder(path: Path) -> list[Path]:
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise DataError(path, None, msg("E123", splits=", ".join(map(str, splits)),
                                        example=path / str(splits[0] if splits else "train")))
    kinds = {s: sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() == s), key=_natural)
             for s in SHARDED}
    if kinds[".parquet"] and kinds[".arrow"]:
        raise DataError(path, None, msg("E124", found=".arrow, .parquet"))
    if kinds[".parquet"]:
        return kinds[".parquet"]
    state = path / "state.json"
    if state.is_file():  # Dataset.save_to_disk: its data files, in its own order
        try:
            names = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(state, None, msg("E125", problem=f"no list of data files ({err!r})")) from None
        files = [path / n for n in names]
        for f in files:
            if not f.is_file():
                raise DataError(state, None, msg("E125", problem=f"it lists {f.name}, which is not in the folder"))
        if files:
            return files
    if kinds[".arrow"]:
        return kinds[".arrow"]
    raise DataError(path, None, msg("E122"))


def output_label_names(path: str | Path) -> list[str]:
    """The ``ClassLabel`` names that ``--label-ids`` writes ``ner_tags`` with, for labels
    projected from the labeled input ``path``: the input's own names when it is Parquet or
    Arrow with a ``ClassLabel`` (so the ids stay the dataset's; a type with only one of its
    ``B-``/``I-`` names gets the other appended), else ``O`` then ``B-``/``I-`` of each type in
    the input, types sorted by name (the whole file is read for them)."""
    form = file_form(path)
    names = class_label_names(input_files(path)) if form in ("parquet", "arrow") else None
    types = LabelTypes()
    if names is None:
        for _ in read_columns(path, labels=True, chunk_size=4096, types=types):
            pass
        return ["O"] + [f"{p}-{t}" for t in sorted(types.names) for p in "BI"]
    out = list(names)
    for t in dict.fromkeys(n[2:] for n in names if n != "O"):
        out += [f"{p}-{t}" for p in "BI" if f"{p}-{t}" not in out]
    if "O" not in out:  # after the dataset's own names, which keep their ids
        out.append("O")
    return out


def file_form(path: str | Path) -> str:
    """How :func:`read_columns` reads ``path``: ``"jsonl"``, ``"parquet"``, ``"arrow"``,
    ``"text"`` or ``"conll"`` (``.txt`` is CoNLL when its first lines end in labels, as
    MasakhaNER ships it). A folder or a glob pattern is read in the form of its shards
    (:func:`input_files`)."""
    path = Path(path)
    if path.is_dir() or _is_pattern(path):
        return input_files(path)[0].suffix.lower()[1:]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".parquet", ".arrow"):
        return suffix[1:]
    if suffix in (".tok", ".text") or (suffix == ".txt" and not looks_like_conll(path)):
        return "text"
    return "conll"


def read_any(path: str | Path, *, labels: bool | None = None) -> Iterator[Sentence]:
    """Stream sentences of ``path`` by its form.

    ``.jsonl``: JSON Lines. ``.parquet``, ``.arrow``, a folder or a glob pattern of them:
    Parquet or Arrow shards (:func:`input_files`). ``.tok``: plain tokenized text, one sentence per line. ``.txt``:
    CoNLL when its first lines end in labels (MasakhaNER ships CoNLL as ``.txt``), else plain
    text. Anything else: CoNLL. ``labels=None`` means labels where the form has them;
    ``labels=True`` requires them.
    """
    form = file_form(path)
    if form in ("parquet", "arrow"):
        types = LabelTypes()
        return (s for cols in read_columns(path, labels=labels, types=types, form=form)
                for s in cols.to_sentences(types))
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path, labels=labels is not False)
    if suffix in (".tok", ".text") or (suffix == ".txt" and not looks_like_conll(path)):
        if labels:
            raise plain_text_error(path)
        return read_text(path)
    return read_conll(path, labels=labels is not False)


def looks_like_conll(path: str | Path, lines_to_check: int = 20) -> bool:
    """True when the first non-blank lines all have two or more columns ending in a label."""
    return _first_unlabeled(path, lines_to_check) is None


def _first_unlabeled(path: str | Path, lines_to_check: int = 20) -> tuple[int, str] | None:
    """``(line number, text)`` of the first of the first non-blank lines that does not end in
    a label, ``(0, "")`` for a file with no such line at all; None when they all do."""
    seen = 0
    for no, text in lines(path):
        if not text.strip() or text.startswith("-DOCSTART-"):
            continue
        cols = text.split("\t") if "\t" in text else text.split()
        last = cols[-1].strip()
        if len(cols) < 2 or not (last == "O" or (len(last) > 2 and last[0] in "BI" and last[1] == "-")):
            return no, text
        seen += 1
        if seen == lines_to_check:
            break
    return None if seen else (0, "")


def plain_text_error(path: str | Path) -> DataError:
    """[E118] for a file that must hold labels but is read as plain text, saying why it is."""
    return DataError(path, None, msg("E118", path=path, why=plain_text_reason(path)))


def plain_text_reason(path: str | Path) -> str:
    """Why ``path`` is read as plain text (one sentence per line), and what to give instead."""
    suffix = Path(path).suffix.lower()
    if suffix != ".txt":
        return f"a {suffix} file holds one sentence per line and no labels; give CoNLL, JSONL or Parquet"
    no, text = _first_unlabeled(path) or (0, "")
    first = f"line {no} does not ({shortened(text)!r})" if no else "it has no such line"
    return (f"a .txt file is read as CoNLL only when its first lines each end in a label (O, B-TYPE or I-TYPE, "
            f"e.g. B-ORG); {first}")


def read_columns(path: str | Path, *, labels: bool | None = None, chunk_size: int = 512,
                 types: LabelTypes | None = None, form: str | None = None,
                 block_size: int = BLOCK) -> Iterator[TokenColumns]:
    """Stream ``path`` as batches of ``chunk_size`` sentences (the last may be shorter).

    ``form``: ``"conll"``, ``"text"``, ``"jsonl"``, ``"parquet"`` or ``"arrow"``; None follows
    :func:`file_form`. A folder or glob pattern of shards reads them one after the other
    (:func:`input_files`).
    ``labels``: ``None`` reads labels where the form has them, ``True`` requires them,
    ``False`` ignores them. ``types`` collects label types (shared by every file of a run).
    Errors are :class:`DataError` naming the file and the line.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    types = types if types is not None else LabelTypes()
    form = form or file_form(path)
    if form == "text" and labels:
        raise plain_text_error(path)
    if form == "jsonl":
        pieces = read_jsonl_pieces(path, labels is not False, types, chunk_size)
    elif form in ("parquet", "arrow"):
        pieces = read_parquet_pieces(input_files(path), labels, types, chunk_size, name=str(path))
    else:
        pieces = read_conll_pieces(path, text=form == "text", labels=form == "conll" and labels is not False,
                                   types=types, block_size=block_size)
    return rechunk(pieces, chunk_size)


def count_sentences(path: str | Path, *, form: str | None = None, block_size: int = 4 * BLOCK) -> int:
    """How many sentences :func:`read_columns` will give for ``path``, counted without
    reading tokens (about a tenth of the cost of reading; for totals and early checks)."""
    form = form or file_form(path)
    if form in ("parquet", "arrow"):
        return count_parquet(input_files(path))
    if form == "jsonl":
        return count_jsonl(path)
    return count_conll(path, text=form == "text", block_size=block_size)


def check_parallel(paths: Sequence[str | Path], *, labels: Sequence[bool | None] | None = None,
                   limit: int | None = None) -> int:
    """The sentence count shared by line-aligned ``paths``, checked before any work:
    [E512] when the first holds none, [E104] when counts differ.

    With ``labels`` (one per path, as :func:`read_columns` takes it) each file is read through
    first, so a decoding error, a bad label or a labeled side read as plain text is reported,
    with its line, before any count is compared (reading runs at about 150 MB/s per core).
    ``limit``: only each file's first ``limit`` sentences count, and only they are read.
    """
    if labels is None:
        counts = [count_sentences(p) for p in paths]
    else:
        counts = [_read_through(p, lab, limit) for p, lab in zip(paths, labels, strict=True)]
    if limit is not None:
        counts = [min(n, limit) for n in counts]
    if counts[0] == 0:
        raise DataError(paths[0], None, msg("E512", path=paths[0]))
    for p, n in zip(paths[1:], counts[1:]):
        if n != counts[0]:
            raise DataError(p, None, msg("E104", a=paths[0], na=counts[0], b=p, nb=n))
    return counts[0]


def _read_through(path: str | Path, labels: bool | None, limit: int | None) -> int:
    """Sentences of ``path`` (at most about ``limit``), every one parsed and checked."""
    n = 0
    for chunk in read_columns(path, labels=labels, chunk_size=4096):
        n += len(chunk)
        if limit is not None and n >= limit:
            break
    return n


def read_parallel_columns(paths: Sequence[str | Path], *, labels: Sequence[bool | None] | None = None,
                          chunk_size: int = 512, types: LabelTypes | None = None, limit: int | None = None,
                          ) -> Iterator[tuple[TokenColumns, ...]]:
    """Batches of the same ``chunk_size`` sentence positions of every file, in lockstep;
    ``limit``: only the first ``limit`` sentences of each file.

    A sentence-count mismatch is a :class:`DataError` [E104] naming both files and both
    counts, as :func:`xfast.io.read_parallel` raises it.
    """
    labels = labels or [None] * len(paths)
    types = types if types is not None else LabelTypes()
    readers = [head(read_columns(p, labels=lab, chunk_size=chunk_size, types=types), limit)
               for p, lab in zip(paths, labels, strict=True)]
    n = 0
    while True:
        row = [next(r, None) for r in readers]
        if all(c is None for c in row):
            return
        sizes = [0 if c is None else len(c) for c in row]
        if len(set(sizes)) > 1:
            short = sizes.index(min(sizes))
            long = sizes.index(max(sizes))
            nb = n + sizes[long] + sum(len(c) for c in readers[long])
            raise DataError(paths[short], None, msg("E104", a=paths[short], na=n + sizes[short],
                                                    b=paths[long], nb=nb))
        n += sizes[0]
        yield tuple(row)


def read_parallel(paths: Sequence[str | Path], *,
                  labels: Sequence[bool | None] | None = None) -> Iterator[tuple[Sentence, ...]]:
    """Yield one tuple of sentences per line-aligned position of ``paths``.

    A sentence-count mismatch is a :class:`DataError` [E104] naming both files and both counts
    (the longer file is counted to its end for the message).
    """
    labels = labels or [None] * len(paths)
    readers = [read_any(p, labels=lab) for p, lab in zip(paths, labels, strict=True)]
    n = 0
    while True:
        row = [next(r, None) for r in readers]
        if all(s is None for s in row):
            return
        if any(s is None for s in row):
            short = row.index(None)
            long = next(i for i, s in enumerate(row) if s is not None)
            extra = 1 + sum(1 for _ in readers[long])
            raise DataError(paths[short], None, msg(
                "E104", a=paths[short], na=n, b=paths[long], nb=n + extra))
        n += 1
        yield tuple(row)
