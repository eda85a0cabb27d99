"""JSON Lines as Hugging Face datasets write them: ``{"tokens": [...], "ner_tags": [...]}``.

``ner_tags`` may be label strings or integer ids; ids need ``label_names`` (the dataset's
``ClassLabel`` names, e.g. ``["O", "B-PER", "I-PER", ...]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from xfast.errors import DataError, msg
from xfast.io.files import atomic_open, lines, open_input
from xfast.io.labels import Sentence, check_label, to_iob2
from xfast.io.tokens import LabelTypes, TokenColumns, from_sentences

__all__ = ["read_jsonl", "write_jsonl", "read_jsonl_pieces", "count_jsonl"]


def read_jsonl(path: str | Path, *, label_names: Sequence[str] | None = None,
               labels: bool = True) -> Iterator[Sentence]:
    """Stream sentences from JSONL; blank lines are skipped, every record is one sentence."""
    for no, text in lines(path):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, no, msg("E105", reason=err.msg)) from None
        except RecursionError:
            raise DataError(path, no, msg("E105", reason="nested too deeply")) from None
        toks = rec.get("tokens") if isinstance(rec, dict) else None
        if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
            raise DataError(path, no, msg("E106", reason="'tokens' is missing or not a list of strings"))
        if not labels:
            yield Sentence(toks, None, no)
            continue
        tags = rec.get("ner_tags")
        if not isinstance(tags, list) or len(tags) != len(toks):
            raise DataError(path, no, msg("E106", reason="'ner_tags' is missing or differs in length"))
        labs = []
        for tag in tags:
            if isinstance(tag, int) and not isinstance(tag, bool):
                if label_names is None or not 0 <= tag < len(label_names):
                    raise DataError(path, no, msg(
                        "E106", reason=f"integer tag {tag} needs label_names covering it"))
                tag = label_names[tag]
            if not isinstance(tag, str):
                raise DataError(path, no, msg("E106", reason=f"tag {tag!r} is neither str nor int"))
            check_label(tag, path, no)
            labs.append(tag)
        yield Sentence(toks, to_iob2(labs), no)


def read_jsonl_pieces(path: str | Path, labels: bool, types: LabelTypes, size: int) -> Iterator[TokenColumns]:
    """Batches of up to ``size`` sentences of ``path`` (``labels``: read ``ner_tags``, coded
    with ``types``)."""
    buf = []
    for s in read_jsonl(path, labels=labels):
        buf.append(s)
        if len(buf) == size:
            yield _columns(buf, types, labels, str(path))
            buf = []
    if buf:
        yield _columns(buf, types, labels, str(path))


def _columns(sents: list[Sentence], types: LabelTypes, labels: bool, path: str) -> TokenColumns:
    return from_sentences([s.tokens for s in sents], types,
                          [s.labels for s in sents] if labels else None, path,
                          [s.line for s in sents])


def count_jsonl(path: str | Path) -> int:
    """Records (sentences) of ``path``: its lines that are not blank."""
    with open_input(path) as fh:
        return sum(1 for raw in fh if raw.strip())


def write_jsonl(path: str | Path, sentences: Iterable[Sentence]) -> int:
    """Write one ``{"tokens", "ner_tags"}`` object per line (string tags); return the count."""
    n = 0
    with atomic_open(path) as fh:
        for s in sentences:
            labs = s.labels if s.labels is not None else ["O"] * len(s.tokens)
            fh.write(json.dumps({"tokens": s.tokens, "ner_tags": labs}, ensure_ascii=False) + "\n")
            n += 1
    return n
