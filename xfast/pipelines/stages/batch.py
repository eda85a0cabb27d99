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

from xfast.evaluate import ScoreCounts
from xfast.io.conll import conll_bytes
from xfast.io.parquet import append_parquet, parquet_bytes
from xfast.io.pharaoh import format_pharaoh
from xfast.models.encoder import Encoded
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stages import columnar
from xfast.pipelines.stages.projection import project_counted
from xfast.project.config import ProjectionConfig
from xfast.project.filtering import REASONS, FilterPolicy, filter_batch, keep_rows, reject_line

__all__ = ["ProjectPlan", "BatchWork", "BatchResult", "RunState", "ENCODER_COUNTS"]

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
    ignore: tuple[str, ...] = ()  # types scored as O
    label_ids: tuple[str, ...] | None = None  # Parquet ner_tags as ids into these ClassLabel names (--label-ids)

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
    counts per ``(side, method)``, whether each side has gold labels,
    ``commit(shard, parts)`` for a finished shard, the shards a resumed run has already, the
    shard size and the progress bar."""

    report: RunReport
    counts: dict
    has_gold: dict[str, bool]
    commit: Callable[[int, dict[str, list[bytes]]], None]
    done: int
    shard_size: int
    bar: object


@dataclass
class BatchResult:
    """What one batch's host stages give the driver, which merges results in batch order: the
    output chunks by output key, the batch's own QA (``report``), its score counts
    (``(name, method, ScoreCounts.of(...))`` of sides with gold labels), which sides had gold,
    and the encoder counts of its tokenize and model stages."""

    parts: dict[str, list[bytes]]
    report: RunReport
    scored: list[tuple]
    has_gold: dict[str, bool]
    enc_counts: dict[str, int]


class BatchWork:
    """The stages of one batch of sentence pairs, the same under every engine: tokenize,
    encode (the model), then align, project, write and score (the host).

    It keeps no state between batches: each call takes the batch's own report and returns
    what it made, so batches may run in several threads at once and be merged in order."""

    def __init__(self, plan: ProjectPlan, aligner) -> None:
        self.plan, self.aligner = plan, aligner
        self.encoder = aligner.encoder
        # link scores read the raw states; otherwise SimAlign's normalisation runs per model output
        self.transform = None if plan.write_alignments else aligner.state_transform
        self.tick = None  # called with each model call's passes (progress)

    def prepare(self, row, report: RunReport) -> tuple[list, dict[str, int]]:
        """Every side's subwords, and their counts."""
        with report.stage("tokenize"):
            subs = [columnar.tokenize(cols, self.encoder) for cols in row[:1 + len(self.plan.names)]]
        counts = {"sentences": sum(len(s) for s in subs), "subwords": sum(len(s.ids) for s in subs),
                  "truncated": sum(s.truncated for s in subs)}
        return subs, counts

    def model(self, prep) -> tuple[list, dict[str, int]]:
        """Every side's encoder states (the one stage that runs the model, in one thread)."""
        stats = self.encoder.stats
        before = {k: stats[k] for k in ("windowed", "windows")}
        langs = self.plan.langs or [None] * len(prep[0])
        states = [columnar.encode(sub, self.encoder, self.transform, self.tick, lang)
                  for sub, lang in zip(prep[0], langs)]
        return states, {k: stats[k] - v for k, v in before.items()}

    def host(self, row, prep, model_out, *, start: int, types, report: RunReport) -> BatchResult:
        """Project batch ``row`` (its first sentence is number ``start`` of the corpus; ``types``
        knows every label it holds) into a :class:`BatchResult`; QA counts go to ``report``."""
        plan, aligner = self.plan, self.aligner
        (subs, tok_counts), (states, enc_delta) = prep, model_out
        out = BatchResult({k: [] for k in plan.outputs}, report, [], {n: True for n in plan.names},
                          {**tok_counts, **enc_delta})
        lab_cols = row[0]
        report.sentences_in += len(lab_cols)
        ents = columnar.entities(lab_cols, compat=plan.cfg.compat)
        for j, name in enumerate(plan.names):
            rec_cols = row[1 + j]
            out.has_gold[name] = rec_cols.codes is not None
            with report.stage("align"):
                aln = columnar.align((subs[0], states[0]), (subs[1 + j], states[1 + j]), aligner)
            if plan.write_alignments:
                with report.stage("write"):
                    out.parts[f"{name}/alignment"].append(_pharaoh(aligner, subs[0], states[0], subs[1 + j],
                                                                   states[1 + j], aln))
            self._methods(row, j, ents, aln, start, types, out)
        report.sentences_out += len(lab_cols)
        return out

    def _methods(self, row, j: int, ents, aln, start: int, types, out: BatchResult) -> None:
        """Every projection method on receiving side ``j`` of the batch, into ``out``."""
        plan, report = self.plan, out.report
        name, rec_cols = plan.names[j], row[1 + j]
        n_rec = rec_cols.lengths()
        cands = {}
        for m in plan.methods:
            with report.stage("project"):
                kind = m.split("-")[0]
                if kind != "heuristic" and kind not in cands:
                    ner = row[1 + len(plan.names) + plan.cand_names.index(name)] if kind == "ner" else None
                    cands[kind] = columnar.candidates(kind, rec_cols, plan.cfg, ner)
                codes = project_counted(m, ents, aln, n_rec, plan.cfg, report, key=f"{name}/{m}", offset=start,
                                        cands=cands.get(kind))
                written = columnar.keep_types(codes, types, plan.label_set)
                columnar.count_entities(report, f"{name}/{m}", ents, codes, written, types)
            out_cols = rec_cols
            if plan.filter.active:
                with report.stage("filter"):
                    out_cols, written, rejects = _filtered(plan, f"{name}/{m}", ents, aln, row[0], rec_cols,
                                                           written, types, start, report)
                if plan.filter.drops:
                    out.parts[f"{name}/{m}/rejects"].append(rejects)
            with report.stage("write"):
                out.parts[f"{name}/{m}"].append(_output_bytes(plan.output_format, out_cols, written, types,
                                                              plan.label_ids))
            if out.has_gold[name]:
                with report.stage("evaluate"):
                    out.scored.append((name, m, ScoreCounts.of(out_cols.codes, written, out_cols.sent_off, types.names,
                                                               ignore=plan.ignore)))


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


def _output_bytes(form: str, cols, codes, types, label_ids=None) -> bytes:
    if form == "parquet":
        return parquet_bytes(cols, codes, types, label_ids)
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
