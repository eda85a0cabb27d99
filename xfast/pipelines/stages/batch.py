"""``xfast project``'s work on one batch of sentence pairs, the same under every engine: tokenize
and encode (the model), then align, project, filter, write and score (the host).

A :class:`ProjectPlan` says what a run projects and is enough to rebuild the work in another
process (a Ray actor); :class:`BatchWork` runs one batch through the stages.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xfast.io.conll import conll_bytes
from xfast.io.parquet import append_parquet, parquet_bytes
from xfast.io.pharaoh import format_pharaoh
from xfast.models.encoder import Encoded
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages import columnar
from xfast.pipelines.stages.projection import project_counted
from xfast.project.config import ProjectionConfig
from xfast.project.filtering import REASONS, FilterPolicy, filter_batch, keep_rows, reject_line

__all__ = ["ProjectPlan", "BatchWork", "RunState", "ENCODER_COUNTS"]

#: the encoder counts that depend only on the input (a resumed run reproduces them)
ENCODER_COUNTS = ("sentences", "subwords", "windowed", "truncated", "windows")


@dataclass(frozen=True)
class ProjectPlan:
    """What a run projects: enough to rebuild its stages in another process (a Ray actor)."""

    names: list[str]
    cand_names: list[str]
    methods: tuple[str, ...]
    cfg: ProjectionConfig
    label_set: set[str] | None
    write_alignments: bool
    output_format: str
    outputs: tuple[str, ...]
    langs: tuple[str, ...] | None = None  # the labeled side's and each receiving side's language (NLLB encoders)

    filter: FilterPolicy = FilterPolicy()

    def join(self, key: str, chunks: list[bytes]) -> bytes:
        """One shard's part of output ``key`` from its batches' chunks."""
        if self.output_format == "parquet" and not key.endswith(("/alignment", "/rejects")) and len(chunks) > 1:
            buf = io.BytesIO()
            append_parquet(chunks, buf)
            return buf.getvalue()
        return b"".join(chunks)


@dataclass
class RunState:
    """The driver's side of a project run, which every engine feeds: the report, the score
    counts per ``(side, method)``, whether each side has gold labels, the types scored as O,
    ``commit(shard, parts)`` for a finished shard, the shards a resumed run has already, the
    shard size and the progress bar."""

    report: RunReport
    counts: dict
    has_gold: dict[str, bool]
    ignore: tuple[str, ...]
    commit: Callable[[int, dict[str, list[bytes]]], None]
    done: int
    shard_size: int
    bar: object


class BatchWork:
    """The stages of one batch of sentence pairs, the same under every engine: tokenize,
    encode (the model), then align, project, write and score (the host)."""

    def __init__(self, plan: ProjectPlan, aligner, types, report: RunReport) -> None:
        self.plan, self.aligner, self.types, self.report = plan, aligner, types, report
        self.encoder = aligner.encoder
        self.enc_counts = dict.fromkeys(ENCODER_COUNTS, 0)
        self.has_gold = {n: True for n in plan.names}
        # link scores read the raw states; otherwise SimAlign's normalisation runs per model output
        self.transform = None if plan.write_alignments else aligner.state_transform
        self.tick = None

    def prepare(self, row):
        with self.report.stage("tokenize"):
            stats = self.encoder.stats
            before = {k: stats[k] for k in ("sentences", "subwords", "truncated")}
            subs = [columnar.tokenize(cols, self.encoder) for cols in row[:1 + len(self.plan.names)]]
            return subs, {k: stats[k] - v for k, v in before.items()}

    def model(self, prep):
        stats = self.encoder.stats
        before = {k: stats[k] for k in ("windowed", "windows")}
        langs = self.plan.langs or [None] * len(prep[0])
        states = [columnar.encode(sub, self.encoder, self.transform, self.tick, lang)
                  for sub, lang in zip(prep[0], langs)]
        return states, {k: stats[k] - v for k, v in before.items()}

    def host(self, row, prep, model_out, *, start: int, parts: dict[str, list[bytes]], scored) -> None:
        """Project batch ``row`` (its first sentence is number ``start`` of the corpus): output
        chunks go to ``parts``, gold and predicted codes of sides with gold labels to
        ``scored(name, method, gold, pred, sent_off)``."""
        plan, report, types, aligner = self.plan, self.report, self.types, self.aligner
        (subs, tok_counts), (states, enc_delta) = prep, model_out
        for k, v in (*tok_counts.items(), *enc_delta.items()):
            self.enc_counts[k] += v
        lab_cols = row[0]
        report.sentences_in += len(lab_cols)
        ents = columnar.entities(lab_cols, compat=plan.cfg.compat)
        for j, name in enumerate(plan.names):
            rec_cols = row[1 + j]
            n_rec = rec_cols.lengths()
            if rec_cols.codes is None:
                self.has_gold[name] = False
            with report.stage("align"):
                aln = columnar.align((subs[0], states[0]), (subs[1 + j], states[1 + j]), aligner)
            if plan.write_alignments:
                with report.stage("write"):
                    parts[f"{name}/alignment"].append(_pharaoh(aligner, subs[0], states[0], subs[1 + j],
                                                               states[1 + j], aln))
            cands = {}
            for m in plan.methods:
                with report.stage("project"):
                    kind = m.split("-")[0]
                    if kind != "heuristic" and kind not in cands:
                        ner = row[1 + len(plan.names) + plan.cand_names.index(name)] if kind == "ner" else None
                        cands[kind] = columnar.candidates(kind, rec_cols, plan.cfg, ner)
                    codes = project_counted(m, ents, aln, n_rec, plan.cfg, report, key=f"{name}/{m}",
                                                   offset=start, cands=cands.get(kind))
                    written = columnar.keep_types(codes, types, plan.label_set)
                    columnar.count_entities(report, f"{name}/{m}", ents, codes, written, types)
                out_cols = rec_cols
                if plan.filter.active:
                    with report.stage("filter"):
                        out_cols, written, rejects = _filtered(plan, f"{name}/{m}", ents, aln, row[0], rec_cols,
                                                               written, types, start, report)
                    if plan.filter.drops:
                        parts[f"{name}/{m}/rejects"].append(rejects)
                with report.stage("write"):
                    parts[f"{name}/{m}"].append(_output_bytes(plan.output_format, out_cols, written, types))
                if self.has_gold[name]:
                    scored(name, m, out_cols.codes, written, out_cols.sent_off)
        report.sentences_out += len(lab_cols)


def _filtered(plan: ProjectPlan, key: str, ents, aln, lab_cols, rec_cols, codes, types, start: int,
              report: RunReport) -> tuple:
    """``plan.filter`` on one output's batch (``codes``: its labels after the label set; the
    first sentence is number ``start``): ``(kept sentences, their codes, rejects JSONL bytes)``,
    counted in ``report``."""
    names = types.names
    counted = None if plan.label_set is None else np.array([n in plan.label_set for n in names], bool)
    f = filter_batch(codes, rec_cols.sent_off, ents.offsets, ents.spans, ents.types, aln.offsets, aln.pairs,
                     plan.filter, counted=counted)
    kept, tok = keep_rows(rec_cols, ~f.dropped)
    dropped = np.flatnonzero(f.dropped).tolist()
    report.filtered(key, len(rec_cols) - len(dropped),
                    {r: int(np.sum(f.states[dropped] == s)) for s, r in enumerate(REASONS) if s},
                    int(f.removed.sum()))
    lines, table = [], types.table()
    so, eo, po = rec_cols.sent_off.tolist(), ents.offsets.tolist(), f.spans.offsets.tolist()
    for i in dropped:
        own = [e for e in range(eo[i], eo[i + 1]) if counted is None or counted[ents.types[e]]]
        lines.append(reject_line(
            start + i, REASONS[f.states[i]], rec_cols.words(i), [table[c] for c in f.codes[so[i]:so[i + 1]].tolist()],
            [(int(ents.spans[e, 0]), int(ents.spans[e, 1]), names[ents.types[e]]) for e in own],
            [bool(f.entity_projected[e]) for e in own],
            [(int(f.spans.spans[k, 0]), int(f.spans.spans[k, 1]), names[f.spans.types[k]], f.spans.scores[k])
             for k in range(po[i], po[i + 1]) if f.removed[k]],
            labeled_line=int(lab_cols.lines[i]), receiving_line=int(rec_cols.lines[i])))
    return kept, f.codes[tok], b"".join(lines)


def _output_bytes(form: str, cols, codes, types) -> bytes:
    if form == "parquet":
        return parquet_bytes(cols, codes, types)
    return conll_bytes(cols, codes, types)


def _pharaoh(aligner, lab_sub, lab_states, rec_sub, rec_states, aln) -> bytes:
    """Pharaoh lines (``i-j:score``) of a batch's alignments."""
    def enc(sub, states):
        off = sub.offsets.tolist()
        return [Encoded(st, sub.word_ids[off[i]:off[i + 1]]) for i, st in enumerate(states.sentences())]

    off = aln.offsets.tolist()
    alns = [aln.pairs[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    link = aligner.link_scores(enc(lab_sub, lab_states), enc(rec_sub, rec_states), alns)
    return "".join(format_pharaoh(a, sc) + "\n" for a, sc in zip(alns, link)).encode("utf-8")
