"""The baseline of ``bench_host.py``: ``xfast project``'s host path as it was before the
columnar pipeline (commit 34be63e), kept here frozen so that both run in one process.

Per-sentence Python objects end to end: a line-by-line CoNLL reader, the fast tokenizer on
every whole sentence, a padded ``(batch, seq)`` model call scattered back per sentence,
similarity and extraction per pair (``Aligner.align_encoded``), the list-based projection
API (n-gram candidates converted to Python lists), labels written as strings, and every gold
and predicted label list kept until the end for scoring. The model call is the stand-in
passed in (``model(ids (b, t), mask (b, t)) -> (b, t, hidden)``), timed apart as ``model``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from xfast.errors import DataError, msg
from xfast.io.conll import Sentence, check_label, to_iob2
from xfast.io.files import lines
from xfast.models.encoder import Encoded

__all__ = ["baseline_project"]


def chunks(items, size: int):
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _read_conll(path, labels=True):
    tokens, labs, first, after_doc, ncols = [], [], 0, False, None
    for no, text in lines(path):
        if not text.strip():
            if tokens:
                yield Sentence(tokens, to_iob2(labs) if labels else None, first)
                tokens, labs = [], []
            elif not after_doc:
                yield Sentence([], [] if labels else None, no)
            continue
        if text.startswith("-DOCSTART-"):
            after_doc = True
            continue
        after_doc = False
        cols = text.split("\t") if "\t" in text else text.split()
        if labels:
            if len(cols) < 2:
                raise DataError(path, no, msg("E102", line=text))
            if ncols is None:
                ncols = len(cols)
            elif len(cols) != ncols:
                raise DataError(path, no, msg("E109", expected=ncols, got=len(cols)))
            check_label(cols[-1].strip(), path, no)
        if not tokens:
            first = no
        tokens.append(cols[0].strip())
        if labels:
            labs.append(cols[-1].strip())
    if tokens:
        yield Sentence(tokens, to_iob2(labs) if labels else None, first)


def _encode(encoder, sentences, model, timings):
    """The encoder's old ``encode``: whole-sentence tokenization, padded batches."""
    nonempty = [i for i, s in enumerate(sentences) if s]
    encs = encoder.tokenizer.encode_batch([sentences[i] for i in nonempty], is_pretokenized=True,
                                          add_special_tokens=False) if nonempty else []
    ids = [np.zeros(0, np.int64)] * len(sentences)
    wids = [np.zeros(0, np.int32)] * len(sentences)
    for i, e in zip(nonempty, encs):
        ids[i] = np.asarray(e.ids, dtype=np.int64)
        wids[i] = np.asarray(e.word_ids, dtype=np.int32)
    states = [np.empty((len(x), encoder.hidden_size), np.float32) for x in ids]
    passes = []
    for i, x in enumerate(ids):
        if len(x):
            passes.extend((i, *p) for p in encoder._windows(len(x)))
    pre, suf = np.asarray(encoder._prefix, np.int64), np.asarray(encoder._suffix, np.int64)
    extra = len(pre) + len(suf)
    lengths = np.array([p[2] - p[1] + extra for p in passes], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    k = 0
    while k < len(order):
        j = k + 1
        while j < len(order) and (j - k + 1) * lengths[order[j]] <= encoder.max_tokens:
            j += 1
        rows = order[k:j]
        width = int(lengths[rows[-1]])
        batch = np.full((len(rows), width), encoder.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, p in enumerate(rows):
            i, a, b, _, _ = passes[p]
            n = b - a + extra
            batch[r, :n] = np.concatenate([pre, ids[i][a:b], suf])
            mask[r, :n] = 1
        t = time.perf_counter()
        hidden = model(batch, mask)
        timings["model"] += time.perf_counter() - t
        for r, p in enumerate(rows):
            i, a, _, oa, ob = passes[p]
            off = len(pre) - a
            states[i][oa:ob] = hidden[r, oa + off: ob + off]
        k = j
    return [Encoded(s, w) for s, w in zip(states, wids)]


def baseline_project(labeled: Path, receiving: dict[str, Path], out: Path, aligner, model, *,
                     methods=("heuristic", "ngram-greedy"), batch_size: int = 512) -> dict:
    """The old ``project_parallel`` loop; returns ``{"timings": {...}, "results": [...]}``
    (seconds per stage; ``model`` is the stand-in's own time inside ``tokenize+encode``)."""
    from xfast.evaluate import ignore_types, proj_ratio, scores
    from xfast.io.files import atomic_open
    from xfast.pipelines.parallel import labeled_entities
    from xfast.pipelines.qa import RunReport
    from xfast.pipelines.stages.projection import project_batch
    from xfast.project.config import ProjectionConfig

    timings: dict[str, float] = defaultdict(float)
    cfg, report = ProjectionConfig(), RunReport()
    names = list(receiving)
    out.mkdir(parents=True, exist_ok=True)
    gold = {n: [] for n in names}
    preds = {(n, m): [] for n in names for m in methods}
    files = {(n, m): atomic_open(out / f"{n}.{m}.conll") for n in names for m in methods}
    fh = {k: f.__enter__() for k, f in files.items()}

    def read():
        readers = [_read_conll(labeled)] + [_read_conll(receiving[n]) for n in names]
        while True:
            t = time.perf_counter()
            row = [next(r, None) for r in readers]
            timings["read"] += time.perf_counter() - t
            if row[0] is None:
                return
            yield row

    for batch in chunks(read(), batch_size):
        start = report.sentences_in
        report.sentences_in += len(batch)
        lab = [r[0] for r in batch]
        t = time.perf_counter()
        entities = [labeled_entities(s.labels) for s in lab]
        lab_enc = _encode(aligner.encoder, [s.tokens for s in lab], model, timings)
        timings["tokenize+encode"] += time.perf_counter() - t
        for j, name in enumerate(names):
            rec = [r[1 + j] for r in batch]
            words = [s.tokens for s in rec]
            gold[name].extend(s.labels for s in rec)
            t = time.perf_counter()
            rec_enc = _encode(aligner.encoder, words, model, timings)
            timings["tokenize+encode"] += time.perf_counter() - t
            t = time.perf_counter()
            alns = aligner.align_encoded(lab_enc, rec_enc)
            timings["align"] += time.perf_counter() - t
            for m in methods:
                t = time.perf_counter()
                labels = project_batch(m, entities, alns, words, cfg, report, key=f"{name}/{m}", offset=start)
                timings["project"] += time.perf_counter() - t
                t = time.perf_counter()
                w = fh[(name, m)]
                for toks, labs in zip(words, labels):
                    w.writelines(f"{tk}\t{lb}\n" for tk, lb in zip(toks, labs))
                    w.write("\n")
                timings["write"] += time.perf_counter() - t
                preds[(name, m)].extend(labels)
    for f in files.values():
        f.__exit__(None, None, None)
    t = time.perf_counter()
    results = []
    for name in names:
        for m in methods:
            row = scores(gold[name], preds[(name, m)])
            row["proj_ratio"] = proj_ratio(ignore_types(gold[name], ()), ignore_types(preds[(name, m)], ()))
            row.update({"lang": name, "method": m})
            results.append(row)
    timings["evaluate"] += time.perf_counter() - t
    return {"timings": dict(timings), "results": results}
