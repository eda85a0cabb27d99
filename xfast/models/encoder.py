"""The aligner's encoder: words in, layer-L subword states out (docs/alignment.md).

:class:`Encoder` runs a model cut after layer ``L`` batch-first: each sentence is tokenized once
with the fast tokenizer (``tokenizers`` on ``tokenizer.json``, words pre-split, ``word_ids()``
giving the subword-to-word map), windows of at most the model's limit are cut from over-long
sentences (overlapping by half, each subword taken from the window where it sits most
centrally, so every word gets states), windows are sorted by length and packed into batches
under a token budget, and the states come back per sentence with special tokens dropped.

The model runs behind a backend (:mod:`xfast.models.backends`, one module per runtime): ONNX
Runtime on an export that :func:`xfast.models.export.encoder.export_encoder` writes once into
the cache (cut after layer ``L``, optionally int8 or float16; packed for BERT and XLM-R
layouts), the default on CPUs; or torch on the checkpoint itself (packed batches, float16 by
default), the default on CUDA GPUs and the parity reference on CPUs. This module holds the runtime only;
the backend modules and the exporter import onnxruntime, torch and transformers, and are
imported when an encoder is made (:meth:`Encoder._open_backend`).

The encoder of an NLLB-200 (M2M100) translation checkpoint aligns too (docs/alignment.md, "The
translator's encoder"): it is exported the same way, and each sentence is fed as the translator
feeds it, ``[language code] subwords </s>``, with the code of the sentence's own language.

Kept importable from here: the types of :mod:`xfast.models.types`, :func:`load_tokenizer`
(:mod:`xfast.models.modeldir`), ``DEVICES`` and ``providers_for`` (:mod:`xfast.models.backends`)
and, loaded on first use, ``export_encoder`` (:mod:`xfast.models.export.encoder`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xfast._native import load
from xfast.errors import ModelError, ParameterError, check_choice, msg
from xfast.io.tokens import from_sentences
from xfast.models.backends import (DEVICES, PRECISIONS, Backend, device_of, onnx_providers, providers_for,
                                   resolve_backend, resolve_precision, torch_cuda)
from xfast.models.backends import NAMES as _BACKENDS
from xfast.models.flores import flores_code
from xfast.models.modeldir import ENCODER_META as _META
from xfast.models.modeldir import TRANSLATORS as _TRANSLATORS
from xfast.models.modeldir import (check_layer, encoder_source, load_tokenizer, max_length, position_offset,
                                   read_config)
from xfast.models.registry import get, resolve
from xfast.models.types import Encoded, States, Subwords

__all__ = ["Encoded", "Encoder", "States", "Subwords", "load_tokenizer", "providers_for", "takes_language",
           "DEVICES"]


_pack = load("xfast.models", "_packing")
_wordcache = load("xfast.models", "_wordcache")


def _word_cache(max_words: int):
    return _wordcache.WordCache(max_words)


def takes_language(model: object) -> bool:
    """Whether ``model`` (an :class:`Encoder` or Aligner, a registry name or a directory) is a
    translator's encoder, which reads each sentence's language; told from the registry or the
    config, without loading the model."""
    if hasattr(model, "takes_language"):
        return bool(model.takes_language)
    if not isinstance(model, (str, os.PathLike)):
        return False
    path = Path(model).expanduser()
    if not path.is_dir():
        try:
            return get(str(model)).kind == "translator"
        except ParameterError:
            path = resolve(model)
    path = encoder_source(path)
    if (path / "config.json").is_file():
        return read_config(path).get("model_type") in _TRANSLATORS
    meta = path / _META
    return meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("model_type") in _TRANSLATORS


def _default_layer(model: str | os.PathLike, model_dir: Path) -> int:
    """The layer an encoder's states come from when none is asked for: an export's own
    layer, a translator's last (after its final layer norm), the registry's for a registered
    model, else 8 (SimAlign's)."""
    meta = model_dir / _META
    if meta.is_file() and not (model_dir / "config.json").is_file():
        return int(json.loads(meta.read_text(encoding="utf-8"))["layer"])
    if (model_dir / "config.json").is_file():
        cfg = read_config(model_dir)
        if cfg.get("model_type") in _TRANSLATORS:
            return int(cfg["num_hidden_layers"])
    if isinstance(model, str) and not Path(model).expanduser().is_dir():
        try:
            return get(model).default_layer or 8
        except ParameterError:
            pass
    return 8


def _as_export(model_dir: Path, layer: int, backend: str, quantize: str | None) -> Path | None:
    """``model_dir`` itself when it is an xfast encoder export (``xfast models export`` or
    ``xfast models tiny`` wrote it), checked against the requested settings; else None."""
    meta_path = model_dir / _META
    if (model_dir / "config.json").is_file() or not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if backend != "onnx":
        raise ParameterError(msg("E202", name="backend", expected=f"'onnx' for the ONNX export {model_dir}",
                                 value=backend))
    if layer != meta.get("layer"):
        raise ParameterError(msg("E202", name="layer", expected=f"{meta.get('layer')} (the layer {model_dir} "
                                 "was cut after; a Hugging Face directory can be cut anywhere)", value=layer))
    if quantize != meta.get("quantize"):
        raise ParameterError(msg("E202", name="quantize", expected=f"{meta.get('quantize')!r} (how {model_dir} "
                                 "was exported)", value=quantize))
    return model_dir


def _export_config(export: Path) -> dict:
    """The model settings an encoder needs, from an export's metadata."""
    meta = json.loads((export / _META).read_text(encoding="utf-8"))
    offset = int(meta.get("position_offset", 0))
    return {"hidden_size": meta["hidden_size"], "pad_token_id": meta.get("pad_token_id"),
            "num_hidden_layers": meta.get("num_hidden_layers") or meta["layer"],
            "max_position_embeddings": int(meta["max_length"]) + offset,
            "model_type": meta.get("model_type"), "intermediate_size": meta.get("intermediate_size")}


def _default_max_tokens(cfg: dict, run: object) -> int:
    """Tokens per batch: on GPU about 1 GB of feed-forward activations counted in float32
    (65,536 tokens for e5-small, 21,845 for mBERT), twice that for torch in 16 bits, at most
    131,072 tokens (both models); on CPU about 6 MB (what fits the cores' caches)."""
    session = getattr(run, "session", None)
    provider = session.get_providers()[0] if session is not None else str(getattr(run, "provider", ""))
    width = 4 * int(cfg.get("intermediate_size") or 4 * cfg["hidden_size"])
    if "cuda" in provider.lower():
        if getattr(run, "precision", "float32") in ("float16", "bfloat16"):
            return max(8192, min(131072, (1 << 31) // width))
        return max(4096, min(65536, (1 << 30) // width))
    return max(256, (6 << 20) // width)


def _torch_device(device: str, providers: Sequence[str] | None) -> str:
    """The torch device of an encoder on torch: ``cuda`` when asked for (checked: [E230]), for
    ``auto`` when torch sees a GPU, else ``cpu``."""
    if device == "cpu":
        return "cpu"
    why = torch_cuda()
    if why is None:
        return "cuda"
    if device == "cuda":
        import onnxruntime as ort

        ort_hint = ("; ONNX Runtime's CUDA provider is here: --backend onnx"
                    if "CUDAExecutionProvider" in ort.get_available_providers() else "")
        raise ParameterError(msg("E230", torch=why, ort=ort_hint))
    return "cpu"


# ----------------------------------------------------------------------------- Encoder
class Encoder:
    """Multilingual encoder returning layer-``layer`` subword states per word-split sentence.

    ``model``: a registry name (default ``"e5-small"``, the embedded aligner), a hub id, a
    local Hugging Face directory or an xfast ONNX export. ``layer``: None takes the registry's
    layer for a registered model, an export's own, else 8. ``device``: ``"cpu"``, ``"cuda"`` or
    ``"auto"`` (None: the one ``providers`` asks for, ``auto`` without them). ``backend``:
    ``"onnx"`` (ONNX Runtime on the cached export), ``"torch"`` (torch on the checkpoint: packed
    batches, :class:`~xfast.models.backends.torch.TorchBackend`) or None: torch on a CUDA GPU that
    torch can use, ONNX Runtime elsewhere (and always for an ONNX export).
    ``quantize``: the number format. ONNX: None (float32), ``"int8"`` or ``"float16"`` (for
    GPUs; on a CPU it is slow). torch: None (float16 on a GPU, float32 on a CPU),
    ``"float32"``, ``"float16"`` or ``"bfloat16"``; :attr:`precision` is the one in use.
    ``threads``: intra-op threads (None: the runtime's default). ``providers``: ONNX Runtime
    providers (default CUDA when present, then CPU; :func:`~xfast.models.backends.providers_for`
    maps a device to them; ``CUDAExecutionProvider`` first also puts torch on the GPU).
    ``io_binding``: see :class:`~xfast.models.backends.onnx.OnnxBackend` (None: on for GPUs).
    ``compile``: torch only, run the model through ``torch.compile`` (None: when
    ``XFAST_TORCH_COMPILE=1``).
    ``max_tokens``: padded tokens per batch; None picks it by device: on CPU a batch whose
    feed-forward activations fit the cores' caches (1,024 tokens for e5-small, 512 for mBERT;
    measured 24% faster than 8,192 on e5-small), on GPU about 1 GB of activations (2 GB for
    torch in 16 bits). ``window``: longest pass in subwords, special
    tokens included (None: the model's limit); longer sentences are encoded in windows
    overlapping by half and counted in ``stats["windowed"]``. ``truncate=True`` instead keeps
    only the subwords of the first pass, as the paper's code does (docs/compat.md): later
    words get no states, and such sentences are counted in ``stats["truncated"]``.
    ``word_cache``: most words whose subword ids are kept (each word is tokenized on its
    own, so a cached word's ids equal the tokenizer's; ``stats`` reports hits and misses).

    An NLLB-200 checkpoint (a registry name such as ``"nllb-600m"``, a Hugging Face
    directory, or xfast's CTranslate2 export of one) gives its encoder; ``layer`` None takes
    the last, after the final layer norm. Such an encoder reads each sentence's language
    (:attr:`takes_language`): the ``lang`` argument of :meth:`encode` and
    :meth:`encode_subwords`, an ISO 639 or FLORES-200 code.

    The columnar path: :meth:`subwords` (a :class:`~xfast.io.tokens.TokenColumns` batch to
    :class:`Subwords`) then :meth:`encode_subwords` (states of every subword, back to back).
    """

    def __init__(self, model: str | os.PathLike = "e5-small", *, layer: int | None = None,
                 backend: str | None = None, quantize: str | None = None, threads: int | None = None,
                 providers: Sequence[str] | None = None, max_tokens: int | None = None,
                 window: int | None = None, truncate: bool = False,
                 word_cache: int = 1 << 20, io_binding: bool | None = None, device: str | None = None,
                 compile: bool | None = None) -> None:
        check_choice("backend", backend, (None, *_BACKENDS))
        check_choice("quantize", quantize, tuple(dict.fromkeys(q for qs in PRECISIONS.values() for q in qs)))
        device = device_of(providers) if device is None else device
        check_choice("device", device, DEVICES)
        for name, value, lo in (("threads", threads, 1), ("max_tokens", max_tokens, 1), ("window", window, 1),
                                ("word_cache", word_cache, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < lo):
                raise ParameterError(msg("E202", name=name, expected=f"an int >= {lo}", value=value))
        self.model_dir = encoder_source(resolve(model))
        is_export = (self.model_dir / _META).is_file() and not (self.model_dir / "config.json").is_file()
        backend = resolve_backend(backend, device, export=is_export, quantize=quantize)
        if backend == "onnx" and quantize == "float32":
            quantize = None  # the ONNX export's own form
        if layer is None:
            layer = _default_layer(model, self.model_dir)
        export = _as_export(self.model_dir, layer, backend, quantize)
        cfg = read_config(self.model_dir) if export is None else _export_config(export)
        self.layer = check_layer(layer, cfg, model)
        if backend == "onnx":
            self.precision = resolve_precision("onnx", quantize, False)
            providers = onnx_providers(device, providers)
            self.device = device_of(providers)
        else:
            self.device = _torch_device(device, providers)
            self.precision = resolve_precision("torch", quantize, self.device == "cuda")
            quantize = self.precision
        self.backend, self.quantize, self.max_tokens = backend, quantize, max_tokens
        self.hidden_size = int(cfg["hidden_size"])
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        self._position_offset = position_offset(cfg)
        self.tokenizer = load_tokenizer(self._open_backend(export, Path(model).name, threads, providers, io_binding,
                                                           compile))
        self.provider = getattr(self._run, "provider", "torch")  # where the model runs
        if max_tokens is None:
            self.max_tokens = _default_max_tokens(cfg, self._run)
        #: True for a translator's encoder: each sentence starts with its language's code
        self.takes_language = cfg.get("model_type") in _TRANSLATORS
        if self.takes_language:  # as the translator reads a source: [code] subwords </s>
            eos = self.tokenizer.token_to_id("</s>")
            if eos is None:
                raise ModelError(msg("E411", path=self.model_dir, reason="the tokenizer has no </s>"))
            self._prefix, self._suffix = [eos], [eos]  # the code's slot, written per sentence
            self._codes: dict[str, int] = {}
        else:
            self._prefix, self._suffix = self._specials()
        limit = max_length(cfg)
        self.max_length = limit if window is None else min(window, limit)
        self._content = self.max_length - len(self._prefix) - len(self._suffix)
        if self._content < 2:
            raise ParameterError(msg("E202", name="window",
                                     expected=f"> {len(self._prefix) + len(self._suffix) + 1}", value=window))
        self.truncate = bool(truncate)
        self.word_cache = _word_cache(word_cache)
        self.stats = {"sentences": 0, "subwords": 0, "windowed": 0, "truncated": 0, "windows": 0,
                      "batches": 0, "word_cache_hits": 0, "word_cache_misses": 0}
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"Encoder({str(self.model_dir)!r}, layer={self.layer}, backend={self.backend!r}, "
                f"quantize={self.quantize!r}, device={self.device!r}, max_length={self.max_length})")

    def _open_backend(self, export: Path | None, name: str, threads: int | None,
                      providers: Sequence[str] | None, io_binding: bool | None, compile: bool | None) -> Path:
        """Start the runtime the batches go to (``self._run``, a
        :class:`~xfast.models.backends.Backend`); returns the directory to read the tokenizer
        from. The one place the runtime and export modules are imported (they import
        onnxruntime, torch and transformers at their top): when an encoder is made, never by
        ``import xfast``."""
        if self.backend == "onnx":
            if export is None:  # a Hugging Face directory: its export, built once (``name`` for the notice)
                from xfast.models.export.encoder import export_encoder

                export = export_encoder(self.model_dir, self.layer, quantize=self.quantize, name=name)
            from xfast.models.backends.onnx import OnnxBackend

            self._run: Backend = OnnxBackend(export, threads, providers, io_binding)
            return export
        try:
            from xfast.models.backends.torch import TorchBackend
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            raise ParameterError(msg("E231", what="encoder (--backend torch)")) from None
        self._run = TorchBackend(self.model_dir, self.layer, threads, self.pad_id, device=self.device,
                                 precision=self.precision, position_offset=self._position_offset, compile=compile)
        return self.model_dir

    def _specials(self) -> tuple[list[int], list[int]]:
        """Special token ids the post-processor puts before and after a single sentence."""
        plain = self.tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=False)
        full = self.tokenizer.post_process(plain, None, True)
        inside = [i for i, w in enumerate(full.word_ids) if w is not None]
        if not inside:
            return list(full.ids), []
        return list(full.ids[: inside[0]]), list(full.ids[inside[-1] + 1 :])

    def _windows(self, n: int) -> list[tuple[int, int, int, int]]:
        """(start, end, own_start, own_end) of each pass over ``n`` content subwords."""
        size = self._content
        if n <= size:
            return [(0, n, 0, n)]
        step = size // 2
        starts = list(range(0, n - size, step)) + [n - size]
        out = []
        for k, s in enumerate(starts):
            own_a = 0 if k == 0 else (s + starts[k - 1] + size) // 2
            own_b = n if k == len(starts) - 1 else (starts[k + 1] + s + size) // 2
            out.append((s, s + size, own_a, own_b))
        return out

    def language_ids(self, lang: str | Sequence[str] | None, n: int) -> np.ndarray | None:
        """Vocabulary ids of the language codes of ``n`` sentences (``lang``: one code for all,
        or one per sentence); None for an encoder that takes no language. Raises
        :class:`~xfast.errors.ParameterError` [E415] when a translator's encoder gets no
        language and [E402] for a language NLLB-200 lacks, and
        :class:`~xfast.errors.ModelError` [E434] for a code missing from the vocabulary."""
        if not self.takes_language:
            return None
        if lang is None:
            raise ParameterError(msg("E415", model=self.model_dir,
                                     how="lang= (on the command line: each side's language)"))
        langs = [lang] if isinstance(lang, str) else list(lang)
        if not isinstance(lang, str) and len(langs) != n:
            raise ParameterError(msg("E202", name="lang", expected=f"one language or {n}",
                                     value=f"{len(langs)} languages"))
        for code in set(langs) - set(self._codes):
            flores = flores_code(code)
            i = self.tokenizer.token_to_id(flores)
            if i is None:
                raise ModelError(msg("E434", code=flores, lang=code, path=str(self.model_dir)))
            self._codes[code] = i
        if isinstance(lang, str):  # one language for the batch (the pipelines' case)
            return np.full(n, self._codes[lang], np.int64)
        return np.array([self._codes[c] for c in langs], np.int64)

    def encode(self, sentences: Sequence[Sequence[str]], *, lang: str | Sequence[str] | None = None) -> list[Encoded]:
        """Encode word-split sentences; returns one :class:`Encoded` per sentence, in order.
        ``lang``: the sentences' language (one code, or one per sentence), read only by a
        translator's encoder (:attr:`takes_language`)."""
        if isinstance(sentences, (str, bytes)) or any(isinstance(s, (str, bytes)) for s in sentences):
            raise ParameterError(msg("E202", name="sentences", expected="a list of word lists", value=type(sentences).__name__))
        sentences = [list(s) for s in sentences]
        for i, s in enumerate(sentences):
            if not all(isinstance(w, str) for w in s):
                raise ParameterError(msg("E303", index=i, problem="every word must be a str"))
        sub = self.subwords(from_sentences(sentences))
        states = self.encode_subwords(sub, lang=lang).sentences()
        off = sub.offsets.tolist()
        return [Encoded(st, sub.word_ids[off[i]:off[i + 1]]) for i, st in enumerate(states)]

    def subwords(self, cols) -> Subwords:
        """Subword ids of a :class:`~xfast.io.tokens.TokenColumns` batch, each word
        tokenized on its own through the per-word cache (the same ids as the tokenizer on
        the whole pre-split sentence). With ``truncate`` only each sentence's first pass is
        kept (counted in ``stats["truncated"]``)."""
        ids, word_ids, offsets = self.word_cache.subwords(cols.text, cols.tok_off, cols.sent_off,
                                                          self._tokenize_words)
        truncated = 0
        if self.truncate:
            lengths = np.diff(offsets)
            over = lengths > self._content
            if over.any():
                truncated = int(over.sum())
                keep = np.arange(len(ids)) - np.repeat(offsets[:-1], lengths) < self._content
                ids, word_ids = ids[keep], word_ids[keep]
                offsets = np.concatenate([[0], np.cumsum(np.minimum(lengths, self._content))])
        with self._stats_lock:  # batches may be tokenized in several threads at once
            self.stats["truncated"] += truncated
            self.stats["sentences"] += len(cols)
            self.stats["subwords"] += len(ids)
            self.stats["word_cache_hits"] = int(self.word_cache.hits)
            self.stats["word_cache_misses"] = int(self.word_cache.misses)
        return Subwords(ids, word_ids, offsets, truncated)

    def _tokenize_words(self, words: list[str]) -> list[list[int]]:
        # a word alone as plain text goes through the same normalizer and pre-tokenizer as
        # one pre-split word, for about half the cost (tests/test_wordcache.py holds the ids
        # equal to whole pre-split sentences)
        return [e.ids for e in self.tokenizer.encode_batch(words, add_special_tokens=False)]

    def encode_subwords(self, sub: Subwords, *, lang: str | Sequence[str] | None = None, transform=None,
                        on_batch=None) -> States:
        """Layer-L states of every subword of ``sub`` (special tokens dropped; over-long
        sentences through windows), left where the model wrote them (:class:`States`).

        ``transform``: a row-wise function applied to each of the model's outputs as soon as
        it is written (while it is in the CPU's caches; it may work in place), e.g.
        :func:`xfast.align.unit_rows_inplace`; the result then holds the transformed states
        (``States.transform`` names it). A transform with ``on_device = True`` (the aligner's
        for extraction on the device, :mod:`xfast.align.device`) keeps the states where torch
        computed them: the blocks are then torch tensors on the encoder's device. ``on_batch(n)``
        is called after each model call with the number of passes it ran (about one per
        sentence), for progress bars. ``lang``: as in :meth:`encode`."""
        codes = self.language_ids(lang, len(sub))
        offsets = sub.offsets
        lengths = np.diff(offsets)
        # passes: (sentence, start, end, own_start, own_end)
        long = np.flatnonzero(lengths > self._content).tolist()
        if not long:
            nz = np.flatnonzero(lengths)
            passes = np.zeros((len(nz), 5), np.int64)
            passes[:, 0] = nz
            passes[:, 2] = passes[:, 4] = lengths[nz]
        else:
            rows = []
            for i, n in enumerate(lengths.tolist()):
                if n:
                    w = self._windows(n)
                    self.stats["windowed"] += len(w) > 1
                    rows.extend((i, *p) for p in w)
            passes = np.array(rows, np.int64).reshape(-1, 5)
        blocks, at = self._run_passes(sub.ids, offsets, passes, transform, on_batch, codes)
        where = np.zeros((len(lengths), 2), np.int64)
        single = np.ones(len(passes), bool)
        if long:  # a windowed sentence's rows, stitched from its passes' own ranges
            stitched, n_rows = [], 0
            for i in long:
                mine = np.flatnonzero(passes[:, 0] == i)
                single[mine] = False
                parts = [blocks[at[p, 0]][at[p, 1] + passes[p, 3] - passes[p, 1]:
                                          at[p, 1] + passes[p, 4] - passes[p, 1]] for p in mine]
                where[i] = (len(blocks), n_rows)
                n_rows += sum(len(x) for x in parts)
                stitched.extend(parts)
            blocks.append(_concat(stitched))
        where[passes[single, 0]] = at[single]
        self.stats["windows"] += len(passes)
        if not blocks:
            empty = np.zeros((0, self.hidden_size), np.float32)
            blocks = [transform(empty) if transform else empty]
        return States(blocks, where, offsets, transform)

    def _run_passes(self, ids: np.ndarray, offsets: np.ndarray, passes: np.ndarray,
                    transform=None, on_batch=None, codes: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Run every pass; returns the model's outputs and, per pass, (output, row of its
        first subword). ``codes``: each sentence's first token (its language code), written
        over the prefix."""
        pre, suf = np.asarray(self._prefix, np.int64), np.asarray(self._suffix, np.int64)
        extra = len(pre) + len(suf)
        lengths = passes[:, 2] - passes[:, 1] + extra
        order = np.argsort(lengths, kind="stable")
        sorted_len = lengths[order].tolist()
        starts = passes[:, 1] + offsets[passes[:, 0]]
        blocks: list[np.ndarray] = []
        at = np.zeros((len(passes), 2), np.int64)
        # a runtime that queues its work (torch on CUDA) gets every batch before the first result
        # is read, so the copies and the compute of consecutive batches overlap
        submit = getattr(self._run, "submit", None)
        on_device = bool(getattr(transform, "on_device", False))
        if on_device and submit is None:
            raise ParameterError(msg("E233", backend=self.backend, value="device"))
        queued: list[tuple[int, object]] = []
        k = 0
        while k < len(order):
            # sorted ascending: the batch's padded length is its last row's length
            j = k + 1
            while j < len(order) and (j - k + 1) * sorted_len[j] <= self.max_tokens:
                j += 1
            rows = order[k:j]
            row_len = lengths[rows]
            batch, first = _pack.pack(ids, starts[rows], row_len - extra, pre, suf)
            if codes is not None:
                batch[first - 1] = codes[passes[rows, 0]]
            at[rows, 0] = len(blocks)
            at[rows, 1] = first
            if submit is not None:
                queued.append((len(blocks), submit(batch, row_len, on_device=on_device)))
                blocks.append(None)
            else:
                out = self._run(batch, row_len)
                blocks.append(transform(out) if transform else out)
            self.stats["batches"] += 1
            if on_batch is not None:
                on_batch(len(rows))
            k = j
        for i, handle in queued:
            out = handle.result()
            blocks[i] = transform(out) if transform else out
        return blocks, at



def _concat(parts: list):
    """Row blocks joined: numpy arrays, or torch tensors (states kept on the device)."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return sys.modules["torch"].cat(parts)  # tensors: torch is loaded


def __getattr__(name: str):
    """``export_encoder``, which moved to :mod:`xfast.models.export.encoder` (torch at its top),
    still importable from here: loaded when first asked for."""
    if name == "export_encoder":
        from xfast.models.export.encoder import export_encoder

        return export_encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
