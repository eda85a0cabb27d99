"""Parquet and Arrow in the layout Hugging Face datasets write: one row per sentence, a
``tokens`` column (list of strings) and, for labeled data, a ``ner_tags`` column (IOB2
strings, or int ids whose names the file's ``huggingface`` metadata lists, as ``datasets``
stores a ``ClassLabel``).

An input is one file or several shards read one after the other (:mod:`xfast.io.readers`
decides which files, and in which order): Parquet files (``Dataset.to_parquet``, the Hub's
``data/train-00000-of-00004.parquet``) or the Arrow files of a ``save_to_disk`` folder
(Arrow IPC streams). Read in row batches (memory bounded by the batch, not the file) into the
same columnar batches as the CoNLL and JSONL readers. A row with no tokens is an empty
sentence, as a blank line is in CoNLL.

Written from label codes, one Parquet part per shard, assembled into one file at the end of a
run: ``ner_tags`` as IOB2 strings, or as ``ClassLabel`` ids whose names go into the file's
Hugging Face metadata (:func:`parquet_bytes` with ``names``), so that
``datasets.load_dataset("parquet", ...)`` gives a ``ClassLabel`` feature.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from xfast._optional import require
from xfast.errors import DataError, msg
from xfast.io.labels import to_iob2
from xfast.io.tokens import LabelTypes, TokenColumns, from_sentences

__all__ = ["require_pyarrow", "count_parquet", "read_parquet_pieces", "parquet_bytes", "append_parquet",
           "label_names", "class_label_names", "hf_metadata"]

#: a file, or the shards of one input in reading order
Files = str | Path | Sequence[str | Path]


def require_pyarrow() -> None:
    """:class:`ParameterError` [E204] saying how to install pyarrow, unless it is installed."""
    _pq()


def _pq():
    """pyarrow and pyarrow.parquet, imported when first needed (an optional extra)."""
    pa = require("pyarrow", what="Parquet files", extra="parquet")
    return pa, require("pyarrow.parquet", what="Parquet files", extra="parquet")


def _files(files: Files) -> list[Path]:
    return [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]


def _is_arrow(path: Path) -> bool:
    return path.suffix.lower() == ".arrow"


def _problem(path: Path, line: int | None, problem: str) -> DataError:
    """[E112] for a Parquet file, [E120] for an Arrow file."""
    return DataError(path, line, msg("E120", problem=problem) if _is_arrow(path) else msg("E112", problem=problem))


class _Shard:
    """One Parquet file or Arrow IPC file or stream: its schema, its row count and its record
    batches of at most ``size`` rows."""

    def __init__(self, path: Path) -> None:
        pa, pq = _pq()
        self.path = path
        if not path.is_file():
            raise DataError(path, None, msg("E110"))
        try:
            if _is_arrow(path):
                self._source = pa.memory_map(str(path))
                head = self._source.read(6)
                self._source.seek(0)
                ipc = pa.ipc.open_file if head == b"ARROW1" else pa.ipc.open_stream  # file or stream format
                self._reader = ipc(self._source)
                self.schema = self._reader.schema
            else:
                self._pf = pq.ParquetFile(str(path))
                self.schema = self._pf.schema_arrow
        except (OSError, pa.ArrowException) as err:
            what = "Arrow IPC" if _is_arrow(path) else "Parquet"
            raise _problem(path, None, f"not a readable {what} file ({err})") from None

    def rows(self) -> int:
        if not _is_arrow(self.path):
            return self._pf.metadata.num_rows
        if hasattr(self._reader, "num_record_batches"):
            return sum(self._reader.get_batch(i).num_rows for i in range(self._reader.num_record_batches))
        return sum(b.num_rows for b in self._reader)  # a stream: its batches, memory-mapped (no copy)

    def batches(self, size: int, columns: list[str]) -> Iterator:
        if not _is_arrow(self.path):
            yield from self._pf.iter_batches(batch_size=size, columns=columns)
            return
        reader = self._reader
        whole = ((reader.get_batch(i) for i in range(reader.num_record_batches))
                 if hasattr(reader, "num_record_batches") else reader)
        for batch in whole:
            batch = batch.select(columns)
            for a in range(0, batch.num_rows, size):
                yield batch.slice(a, size)


def count_parquet(files: Files) -> int:
    """Rows (sentences) of a Parquet or Arrow file, or of every shard of ``files``; from the
    Parquet footers (an Arrow stream's batches are counted, memory-mapped)."""
    return sum(_Shard(p).rows() for p in _files(files))


def label_names(schema) -> list[str] | None:
    """The ``ner_tags`` id names in a Hugging Face datasets schema, else None."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        feat = json.loads(meta)["info"]["features"]["ner_tags"]
        names = (feat.get("feature") or {}).get("names")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return list(names) if names else None


def class_label_names(files: Files) -> list[str] | None:
    """The ``ner_tags`` ClassLabel names of the first shard's Hugging Face metadata, else None."""
    return label_names(_Shard(_files(files)[0]).schema)


def read_parquet_pieces(files: Files, labels: bool | None, types: LabelTypes, size: int,
                        name: str | None = None) -> Iterator[TokenColumns]:
    """Batches of up to ``size`` sentences (:class:`~xfast.io.tokens.TokenColumns`) of a Parquet
    or Arrow file, or of the shards ``files`` one after the other; ``labels``: None reads
    ``ner_tags`` where the first shard has them (then every shard must), True requires them,
    False ignores them. The batches name ``name`` (default: the first file) and number each
    sentence by its row over all shards (1-based); errors name the shard and its row there."""
    paths = _files(files)
    want_labels = None
    row = 0
    for path in paths:
        shard = _Shard(path)
        fields = shard.schema.names
        if "tokens" not in fields:
            raise _problem(path, None, f"no 'tokens' column (columns: {fields})")
        if want_labels is None:
            want_labels = labels is not False and "ner_tags" in fields
        if (labels is True or want_labels) and "ner_tags" not in fields:
            first = "" if path == paths[0] else f", which the first shard {paths[0]} has"
            raise _problem(path, None, f"no 'ner_tags' column{first} (columns: {fields})")
        names = label_names(shard.schema) if want_labels else None
        batches = shard.batches(size, ["tokens", "ner_tags"] if want_labels else ["tokens"])
        local = 0
        while True:
            try:
                batch = next(batches, None)
            except Exception as err:  # noqa: BLE001 - pyarrow's errors for a damaged or mistyped file
                raise _problem(path, local + 1, f"cannot read the rows from here on ({err})") from None
            if batch is None:
                break
            cols = batch.to_pydict()
            sents = cols["tokens"]
            tags = None
            if want_labels:
                tags = [_tags(path, local + 1 + i, t, names) for i, t in enumerate(cols["ner_tags"])]
            for i, toks in enumerate(sents):
                ln = local + 1 + i
                if not isinstance(toks, list):
                    raise _problem(path, ln, f"tokens must be a list of strings, got {toks!r:.60}")
                if any(not isinstance(w, str) or not w for w in toks):
                    raise _problem(path, ln, "tokens must be non-empty strings")
                if tags is not None and len(tags[i]) != len(toks):
                    raise _problem(path, ln, f"{len(toks)} tokens but {len(tags[i])} ner_tags")
            lines = list(range(row + local + 1, row + local + 1 + len(sents)))
            local += len(sents)
            yield from_sentences(sents, types, tags, str(name or paths[0]), lines)
        row += local


def _tags(path: Path, line: int, tags, names: list[str] | None) -> list[str]:
    if not isinstance(tags, list):
        raise _problem(path, line, f"ner_tags must be a list, got {tags!r:.60}")
    out = []
    for t in tags:
        if isinstance(t, str):
            lab = t
        elif names is None:
            raise _problem(path, line, "ner_tags are ids but the file's metadata names no labels (write them as "
                           "strings, or with datasets' ClassLabel)")
        elif not isinstance(t, int) or not 0 <= t < len(names):
            raise _problem(path, line, f"tag id {t!r} is outside the {len(names)} label names")
        else:
            lab = names[t]
        if lab != "O" and not (len(lab) > 2 and lab[:2] in ("B-", "I-")):
            raise _problem(path, line, f"tag {lab!r} is not IOB2 (O, B-TYPE, I-TYPE)")
        out.append(lab)
    return to_iob2(out)


def hf_metadata(names: Sequence[str] | None) -> dict[bytes, bytes]:
    """The ``huggingface`` schema metadata ``datasets`` writes for ``tokens`` (strings) and
    ``ner_tags``: a ``ClassLabel`` with ``names``, or strings when ``names`` is None."""
    tags = ({"feature": {"names": list(names), "_type": "ClassLabel"}, "_type": "Sequence"} if names is not None
            else {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"})
    features = {"tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"}, "ner_tags": tags}
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode("utf-8")}


def parquet_bytes(cols: TokenColumns, codes: np.ndarray, types: LabelTypes,
                  names: Sequence[str] | None = None) -> bytes:
    """A Parquet file (``tokens``, ``ner_tags``) of ``cols`` labelled with ``codes``: tags as
    IOB2 strings, or with ``names`` as ids into ``names`` (a ``ClassLabel``, named in the
    file's Hugging Face metadata; every label must be one of them)."""
    pa, pq = _pq()
    table = types.table()
    if names is None:
        labs = [table[c] for c in np.asarray(codes).tolist()]
    else:
        index = {n: i for i, n in enumerate(names)}
        ids = [index.get(lab, -1) for lab in table]
        missing = [lab for lab, i in zip(table, ids) if i < 0]
        if missing:  # names come from the labeled input, which holds every label written
            raise ValueError(f"labels {missing} are not among the ClassLabel names {list(names)}")
        labs = np.asarray(ids, np.int64)[np.asarray(codes, np.int64)].tolist()
    so = cols.sent_off.tolist()
    toks = cols.tokens()
    data = pa.table({"tokens": [toks[so[i]:so[i + 1]] for i in range(len(so) - 1)],
                     "ner_tags": [labs[so[i]:so[i + 1]] for i in range(len(so) - 1)]},
                    schema=_schema(pa, names))
    buf = io.BytesIO()
    pq.write_table(data, buf)
    return buf.getvalue()


def _schema(pa, names: Sequence[str] | None = None):
    tags = pa.string() if names is None else pa.int64()
    schema = pa.schema([("tokens", pa.list_(pa.string())), ("ner_tags", pa.list_(tags))])
    return schema if names is None else schema.with_metadata(hf_metadata(names))


def append_parquet(parts: Sequence[Path | bytes], out: BinaryIO) -> None:
    """Write the rows of the Parquet files ``parts`` (paths, or a file's bytes), in order, as
    one Parquet file to ``out``, with the first part's schema (its metadata included)."""
    pa, pq = _pq()

    def table(part):
        return pq.read_table(pa.BufferReader(part) if isinstance(part, bytes) else str(part))

    tables = iter(parts)
    first = next(tables, None)
    first = table(first) if first is not None else None
    with pq.ParquetWriter(out, first.schema if first is not None else _schema(pa)) as writer:
        if first is not None:
            writer.write_table(first)
        for part in tables:
            writer.write_table(table(part))
