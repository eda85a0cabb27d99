"""Parquet in the layout Hugging Face datasets write: one row per sentence, a ``tokens`` column
(list of strings) and, for labeled data, a ``ner_tags`` column (IOB2 strings, or int ids whose
names the file's ``huggingface`` metadata lists, as ``datasets`` stores a ``ClassLabel``).

Read in row batches (memory bounded by the batch, not the file) into the same columnar batches
as the CoNLL and JSONL readers; written from label codes, one Parquet part per shard, assembled
into one file at the end of a run.
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

__all__ = ["require_pyarrow", "count_parquet", "read_parquet_pieces", "parquet_bytes", "append_parquet", "label_names"]


def require_pyarrow() -> None:
    """:class:`ParameterError` [E204] saying how to install pyarrow, unless it is installed."""
    _pq()


def _pq():
    """pyarrow and pyarrow.parquet, imported when first needed (an optional extra)."""
    pa = require("pyarrow", what="Parquet files", extra="parquet")
    return pa, require("pyarrow.parquet", what="Parquet files", extra="parquet")


def _open(path: str | Path):
    pa, pq = _pq()
    if not Path(path).is_file():
        raise DataError(path, None, msg("E110"))
    try:
        return pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as err:
        raise DataError(path, None, msg("E112", problem=f"not a readable Parquet file ({err})")) from None


def count_parquet(path: str | Path) -> int:
    """Rows (sentences) of a Parquet file, from its footer."""
    return _open(path).metadata.num_rows


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


def read_parquet_pieces(path: str | Path, labels: bool | None, types: LabelTypes,
                        size: int) -> Iterator[TokenColumns]:
    """Batches of up to ``size`` sentences (:class:`~xfast.io.tokens.TokenColumns`) of ``path``;
    ``labels``: None reads ``ner_tags`` where present, True requires it, False ignores it.
    Errors name the row (1-based) where :class:`DataError` names a line."""
    pf = _open(path)
    fields = pf.schema_arrow.names
    if "tokens" not in fields:
        raise DataError(path, None, msg("E112", problem=f"no 'tokens' column (columns: {fields})"))
    want_labels = labels is not False and "ner_tags" in fields
    if labels is True and "ner_tags" not in fields:
        raise DataError(path, None, msg("E112", problem=f"no 'ner_tags' column (columns: {fields})"))
    names = label_names(pf.schema_arrow) if want_labels else None
    row = 0
    batches = pf.iter_batches(batch_size=size, columns=["tokens", "ner_tags"] if want_labels else ["tokens"])
    while True:
        try:
            batch = next(batches, None)
        except Exception as err:  # noqa: BLE001 - pyarrow's errors for a damaged or mistyped file
            raise DataError(path, row + 1, msg("E112", problem=f"cannot read the rows from here on ({err})")) from None
        if batch is None:
            return
        cols = batch.to_pydict()
        sents = cols["tokens"]
        lines = list(range(row + 1, row + 1 + len(sents)))
        tags = None
        if want_labels:
            tags = [_tags(path, row + 1 + i, t, names) for i, t in enumerate(cols["ner_tags"])]
        for i, (toks, ln) in enumerate(zip(sents, lines)):
            if not isinstance(toks, list):
                raise DataError(path, ln, msg("E112", problem=f"tokens must be a list of strings, got {toks!r:.60}"))
            if not toks:
                raise DataError(path, ln, msg("E112", problem="row has no tokens"))
            if any(not isinstance(w, str) or not w for w in toks):
                raise DataError(path, ln, msg("E112", problem="tokens must be non-empty strings"))
            if tags is not None and len(tags[i]) != len(toks):
                raise DataError(path, ln, msg("E112", problem=f"{len(toks)} tokens but {len(tags[i])} ner_tags"))
        row += len(sents)
        yield from_sentences(sents, types, tags, str(path), lines)


def _tags(path, line: int, tags, names: list[str] | None) -> list[str]:
    if not isinstance(tags, list):
        raise DataError(path, line, msg("E112", problem=f"ner_tags must be a list, got {tags!r:.60}"))
    out = []
    for t in tags:
        if isinstance(t, str):
            lab = t
        elif names is None:
            raise DataError(path, line, msg("E112", problem="ner_tags are ids but the file's metadata names no "
                                            "labels (write them as strings, or with datasets' ClassLabel)"))
        elif not 0 <= t < len(names):
            raise DataError(path, line, msg("E112", problem=f"tag id {t} is outside the {len(names)} label names"))
        else:
            lab = names[t]
        if lab != "O" and not (len(lab) > 2 and lab[:2] in ("B-", "I-")):
            raise DataError(path, line, msg("E112", problem=f"tag {lab!r} is not IOB2 (O, B-TYPE, I-TYPE)"))
        out.append(lab)
    return to_iob2(out)


def parquet_bytes(cols: TokenColumns, codes: np.ndarray, types: LabelTypes) -> bytes:
    """A Parquet file (``tokens``, ``ner_tags`` as strings) of ``cols`` labelled with ``codes``."""
    pa, pq = _pq()
    table = types.table()
    labs = [table[c] for c in np.asarray(codes).tolist()]
    so = cols.sent_off.tolist()
    toks = cols.tokens()
    data = pa.table({"tokens": [toks[so[i]:so[i + 1]] for i in range(len(so) - 1)],
                     "ner_tags": [labs[so[i]:so[i + 1]] for i in range(len(so) - 1)]},
                    schema=_schema(pa))
    buf = io.BytesIO()
    pq.write_table(data, buf)
    return buf.getvalue()


def _schema(pa):
    return pa.schema([("tokens", pa.list_(pa.string())), ("ner_tags", pa.list_(pa.string()))])


def append_parquet(parts: Sequence[Path | bytes], out: BinaryIO) -> None:
    """Write the rows of the Parquet files ``parts`` (paths, or a file's bytes), in order, as
    one Parquet file to ``out``."""
    pa, pq = _pq()
    with pq.ParquetWriter(out, _schema(pa)) as writer:
        for part in parts:
            writer.write_table(pq.read_table(pa.BufferReader(part) if isinstance(part, bytes) else str(part)))
