"""NER tagging of words (docs/translation.md): token classification, first-subword labels, entity runs.

:class:`Tagger` runs a token classifier exported to ONNX
(:func:`xfast.models.export.tagger.export_tagger`, built once into the cache when a Hugging Face
directory is given), or the transformers model itself (``backend="torch"``, used by parity
tests), over words:

- each word's subwords come from one tokenization of the sentence's words (a fast tokenizer's
  ``word_ids``); a word takes the argmax of its first subword's scores (ties to the lowest
  label id);
- entities are maximal runs: ``B-X`` starts one, ``I-X`` continues an ``X`` run and starts a
  new one after ``O`` or another type (IOB1-safe); a word with no subwords inside a run is
  covered by it;
- sentences longer than the model's window are cut into overlapping windows at word
  boundaries and each word takes its label from the window where it sits most centrally, so
  no word is silently left out (the default, docs/translation.md; the count is in :attr:`Tagger.stats`);
  ``truncate=True`` instead tags one pass over the first window of subwords, as the reference
  does (docs/compat.md): later words are ``O``;
- windows of all sentences are sorted by length and batched up to ``max_tokens`` padded
  subwords per forward pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xfast.errors import ModelError, ParameterError, check_choice, msg
from xfast.io.labels import labels_of
from xfast.models.cache import EXPORT_MANIFEST
from xfast.models.backends import (DEVICES, device_of, onnx_providers, resolve_backend, resolve_precision,
                                   torch_cuda)
from xfast.models.modeldir import ROBERTA_LIKE, position_offset, tokenizer_of
from xfast.models.registry import locate

__all__ = ["Tagger", "TaggerStats", "entity_runs", "iob2"]

_ONNX = "model.onnx"


# --------------------------------------------------------------------------- labels


def _parse_label(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``; bare ``"PER"`` -> ``("I", "PER")``."""
    if label == "O" or not label:
        return "O", ""
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIES":
        prefix = "B" if label[0] in "BS" else "I"
        return prefix, label[2:]
    return "I", label


def entity_runs(prefixes: list[str], types: list[str], has_subwords: list[bool]) -> list[tuple[int, int, str]]:
    """Entities as maximal runs over word labels (docs/translation.md, IOB1-safe).

    ``prefixes[i]`` is ``"B"``, ``"I"`` or ``"O"``; words without subwords are skipped when
    deciding runs and are covered when they lie inside one.
    """
    out: list[tuple[int, int, str]] = []
    start = last = -1
    cur = ""
    for i, (p, t, ok) in enumerate(zip(prefixes, types, has_subwords)):
        if not ok:
            continue
        if p == "O":
            if cur:
                out.append((start, last + 1, cur))
            cur = ""
        elif p == "B" or t != cur:
            if cur:
                out.append((start, last + 1, cur))
            start, cur = i, t
        last = i
    if cur:
        out.append((start, last + 1, cur))
    return out


def iob2(entities: list[tuple[int, int, str]], n: int) -> list[str]:
    """IOB2 labels of ``n`` words from ``(start, end, type)`` entities."""
    return labels_of(entities, n)


# --------------------------------------------------------------------------- tagger


@dataclass
class TaggerStats:
    """Counts over every call of one :class:`Tagger`."""

    sentences: int = 0
    words: int = 0
    words_without_subwords: int = 0
    windowed_sentences: int = 0
    truncated_sentences: int = 0
    windows: int = 0
    batches: int = 0
    seconds: float = 0.0
    by_label: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain-JSON form for reports."""
        return dict(self.__dict__)


def _special_frame(tok) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before and after the words of one sequence."""
    with_sp = tok.encode(["x"], is_pretokenized=True, add_special_tokens=True).ids
    without = tok.encode(["x"], is_pretokenized=True, add_special_tokens=False).ids
    n = len(without)
    for i in range(len(with_sp) - n + 1):
        if with_sp[i : i + n] == without:
            return with_sp[:i], with_sp[i + n :]
    return [], []


class Tagger:
    """Token-classification NER over words (docs/translation.md).

    ``model``: an ONNX export directory (``model.onnx``), a Hugging Face directory or a
    registry name (exported once to ONNX and cached). ``backend="torch"`` runs the checkpoint
    on torch instead (needs the Hugging Face directory), on the encoders' torch backend
    (:class:`~xfast.models.backends.torch.TorchBackend`: packed batches, float16 by default on
    CUDA, ``precision`` otherwise); None: torch on a CUDA GPU that torch can use, else ONNX
    Runtime. ``device``: ``cpu``, ``cuda`` or ``auto`` (None: the one ``providers`` asks for).
    ``threads``: intra-op threads (None: the runtime's default). ``max_tokens``: padded subwords per forward pass. ``max_length``:
    subwords per window including special tokens (default: the model's limit).
    ``label_map``: entity type renames applied before runs are built (``{"PERSON": "PER"}``;
    a type mapped to ``"O"`` or None is dropped). ``truncate``: docs/compat.md: a sentence
    longer than the window is tagged from one pass over its first window of subwords, like a
    Hugging Face tokenizer with truncation: a word whose first subword is kept takes that
    subword's label, every later word is ``O`` and no run reaches past the cut (counted in
    ``stats.truncated_sentences``); by default long sentences are windowed.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        backend: str | None = "onnx",
        threads: int | None = None,
        providers: list[str] | None = None,
        max_tokens: int = 8192,
        max_length: int | None = None,
        label_map: dict[str, str | None] | None = None,
        truncate: bool = False,
        device: str | None = None,
        precision: str | None = None,
    ):
        check_choice("backend", backend, (None, "onnx", "torch"))
        device = device_of(providers) if device is None else device
        check_choice("device", device, DEVICES)
        backend = resolve_backend(backend, device, export=Path(model).is_dir() and (Path(model) / _ONNX).is_file()
                                  and not (Path(model) / "config.json").is_file())
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ParameterError(msg("E202", name="threads", expected="a positive int or None", value=threads))
        if not isinstance(max_tokens, int) or max_tokens < 16:
            raise ParameterError(msg("E202", name="max_tokens", expected="an int >= 16", value=max_tokens))
        self.backend = backend
        self.max_tokens = max_tokens
        self.truncate = bool(truncate)
        self.stats = TaggerStats()
        self.on_batch = None  # called with the passes of each model batch (progress bars)
        self.model_dir = locate(model, backend, kind="tagger", marker=_ONNX, manifest=EXPORT_MANIFEST, export=_export,
                                described="transformers token classifier", export_described="an ONNX export")
        config = json.loads((self.model_dir / "config.json").read_text())
        id2label = {int(k): v for k, v in config.get("id2label", {}).items()}
        if not id2label:
            raise ModelError(
                msg("E433", path=str(self.model_dir), kind="token classifier", reason="no id2label in config.json")
            )
        label_map = dict(label_map or {})
        self.labels = [id2label[i] for i in range(len(id2label))]
        self._prefix, self._type = [], []
        for label in self.labels:
            p, t = _parse_label(label)
            if t:
                t = label_map.get(t, t)
                if t in (None, "O", ""):
                    p, t = "O", ""
            self._prefix.append(p)
            self._type.append(t)
        self._tok = tokenizer_of(self.model_dir)
        self._head, self._tail = _special_frame(self._tok)
        self._pad = config.get("pad_token_id")
        self._pad = 0 if self._pad is None else int(self._pad)
        limit = int(config.get("max_position_embeddings", 512))
        if config.get("model_type") in ROBERTA_LIKE:
            limit -= self._pad + 1
        limit = min(limit, 512) if limit > 0 else 512
        if max_length is not None:
            n_special = len(self._head) + len(self._tail)
            if not isinstance(max_length, int) or max_length < n_special + 2 or max_length > limit:
                raise ParameterError(
                    msg("E202", name="max_length", expected=f"an int in [{n_special + 2}, {limit}]", value=max_length)
                )
            limit = max_length
        self.max_length = limit
        self._window = limit - len(self._head) - len(self._tail)
        if backend == "onnx":
            providers = onnx_providers(device, providers) if providers is not None or device != "auto" else None
            self.device, self.precision = device_of(providers) if providers else "cpu", "float32"
            self._run = self._onnx_runner(threads, providers)
        else:
            self._run = self._torch_runner(threads, device, precision, config)

    def __repr__(self) -> str:
        return (f"Tagger({str(self.model_dir)!r}, backend={self.backend!r}, labels={len(self.labels)}"
                f"{', truncate=True' if self.truncate else ''})")

    # -- runtimes

    def _onnx_runner(self, threads: int | None, providers: list[str] | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.enable_mem_pattern = False  # batches vary in shape: no memory plan per shape
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        if providers is None:
            providers = ["CPUExecutionProvider"]
        sess = ort.InferenceSession(str(self.model_dir / _ONNX), sess_options=opts, providers=providers)

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]

        return run

    def _torch_runner(self, threads: int | None, device: str, precision: str | None, config: dict):
        try:
            from transformers import AutoModelForTokenClassification

            from xfast.models.backends.torch import TorchBackend
        except ModuleNotFoundError as e:
            if e.name not in ("torch", "transformers"):
                raise
            raise ParameterError(msg("E231", what="tagger (--backend torch)")) from None

        on_gpu = device != "cpu" and torch_cuda(probe=True) is None
        if device == "cuda" and not on_gpu:
            raise ParameterError(msg("E230", torch=torch_cuda(), ort=""))
        self.device = "cuda" if on_gpu else "cpu"
        self.precision = resolve_precision("torch", precision, on_gpu)
        model = AutoModelForTokenClassification.from_pretrained(str(self.model_dir)).eval()
        backend = TorchBackend(self.model_dir, None, threads, self._pad, device=self.device, precision=self.precision,
                               position_offset=position_offset(config), model=model.base_model, head=model.classifier)
        n_labels = len(self.labels)

        def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            real = mask.astype(bool)
            logits = np.zeros((*ids.shape, n_labels), np.float32)
            logits[real] = backend(ids[real], real.sum(1).astype(np.int64))
            return logits

        return run

    # -- windows

    def _windows(self, counts: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
        """Windows ``[s, e)`` over words and each word's window (the one it is most central in)."""
        w = self._window
        counts = [min(c, w) for c in counts]
        n = len(counts)
        if sum(counts) <= w:
            return [(0, n)], [0] * n
        offs = np.concatenate([[0], np.cumsum(counts)]).tolist()
        wins = []
        s = 0
        while True:
            e = s
            while e < n and offs[e + 1] - offs[s] <= w:
                e += 1
            wins.append((s, e))
            if e >= n:
                break
            nxt = s + 1
            while nxt < e and offs[nxt] - offs[s] < w // 2:
                nxt += 1
            s = nxt
        owner = [0] * n
        best = [-1] * n
        for k, (s, e) in enumerate(wins):
            for i in range(s, e):
                score = min(offs[i] - offs[s], offs[e] - offs[i + 1])
                if score > best[i]:
                    best[i], owner[i] = score, k
        return wins, owner

    def _first_pass(self, subs: list[list[int]]) -> tuple[list[int], list[int], list[int]]:
        """compat: words whose first subword lies in the first window, their first-subword
        positions and the token ids of that one pass (the last kept word may be cut short)."""
        ids = list(self._head)
        stop = len(ids) + self._window
        words, firsts = [], []
        for i, sw in enumerate(subs):
            if len(ids) >= stop:
                break
            if sw:
                words.append(i)
                firsts.append(len(ids))
                ids.extend(sw[: stop - len(ids)])
        ids.extend(self._tail)
        return words, firsts, ids

    # -- public

    def _predict(self, sentences: list[list[str]]) -> list[np.ndarray]:
        """Label id per word (-1 for words without subwords)."""
        t0 = time.perf_counter()
        sentences = _check_sentences(sentences)
        nonempty = [i for i, s in enumerate(sentences) if s]
        encs = []
        if nonempty:
            encs = self._tok.encode_batch(
                [sentences[i] for i in nonempty], is_pretokenized=True, add_special_tokens=False
            )
        out = [np.full(len(s), -1, dtype=np.int64) for s in sentences]
        # (sentence, word ids, first-subword positions, token ids) per window
        items = []
        for si, enc in zip(nonempty, encs):
            n = len(sentences[si])
            subs: list[list[int]] = [[] for _ in range(n)]
            for tid, wid in zip(enc.ids, enc.word_ids):
                if wid is not None:
                    subs[wid].append(tid)
            self.stats.words_without_subwords += sum(1 for x in subs if not x)
            if self.truncate and sum(map(len, subs)) > self._window:
                # words past the cut keep label -1; nothing after them has one, so every
                # run ends at the cut and they come out O
                self.stats.truncated_sentences += 1
                items.append((si, *self._first_pass(subs)))
                continue
            wins, owner = self._windows([len(x) for x in subs])
            if len(wins) > 1:
                self.stats.windowed_sentences += 1
            for k, (s, e) in enumerate(wins):
                ids = list(self._head)
                words, firsts = [], []
                for i in range(s, e):
                    if not subs[i]:
                        continue
                    if owner[i] == k:
                        words.append(i)
                        firsts.append(len(ids))
                    ids.extend(subs[i][: self._window])
                ids.extend(self._tail)
                items.append((si, words, firsts, ids))
        self.stats.windows += len(items)
        order = sorted(range(len(items)), key=lambda k: -len(items[k][3]))
        i = 0
        while i < len(order):
            longest = len(items[order[i]][3])
            size = max(1, self.max_tokens // longest)
            batch = [items[k] for k in order[i : i + size]]
            i += size
            ids = np.full((len(batch), longest), self._pad, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for r, item in enumerate(batch):
                ids[r, : len(item[3])] = item[3]
                mask[r, : len(item[3])] = 1
            logits = self._run(ids, mask)
            self.stats.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for r, (si, words, firsts, _) in enumerate(batch):
                if words:
                    out[si][words] = np.argmax(logits[r, firsts], axis=-1)
        self.stats.sentences += len(sentences)
        self.stats.words += sum(map(len, sentences))
        self.stats.seconds += time.perf_counter() - t0
        return out

    def entities(self, sentences: list[list[str]]) -> list[list[tuple[int, int, str]]]:
        """Entities ``(start, end, type)`` per sentence (half-open word spans)."""
        result = []
        for labels in self._predict(sentences):
            has = (labels >= 0).tolist()
            prefixes = [self._prefix[k] if k >= 0 else "O" for k in labels.tolist()]
            types = [self._type[k] if k >= 0 else "" for k in labels.tolist()]
            ents = entity_runs(prefixes, types, has)
            for _, _, t in ents:
                self.stats.by_label[t] = self.stats.by_label.get(t, 0) + 1
            result.append(ents)
        return result

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """IOB2 labels per word."""
        return [iob2(ents, len(s)) for ents, s in zip(self.entities(sentences), sentences)]


def _check_sentences(sentences) -> list[list[str]]:
    if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
        raise ParameterError(
            msg("E202", name="sentences", expected="a list of word lists", value=type(sentences).__name__)
        )
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, str) or not isinstance(s, (list, tuple)) or not all(isinstance(w, str) for w in s):
            raise ParameterError(msg("E303", index=i, problem="expected a list of str words"))
        out.append(list(s))
    return out


def _export(hf_dir: Path) -> Path:
    """The cached ONNX export of ``hf_dir``, built first when missing. The exporter imports torch
    and transformers at its top, so it is imported here, only when an export is needed."""
    from xfast.models.export.tagger import export_tagger

    return export_tagger(hf_dir)


def __getattr__(name: str):
    """``export_tagger``, which moved to :mod:`xfast.models.export.tagger` (torch at its top),
    still importable from here: loaded when first asked for."""
    if name == "export_tagger":
        from xfast.models.export.tagger import export_tagger

        return export_tagger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
