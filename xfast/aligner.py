"""``xfast.Aligner``: word-split sentence pairs in, word alignments out (docs/alignment.md, docs/api.md).

One object owns an :class:`~xfast.models.encoder.Encoder` and the extraction settings. The
encoder runs once per side, batched by length; extraction and the subword-to-word union run
in compiled code over the whole batch (:func:`xfast.align.align_states_batch`), or, when the
encoder runs on torch on a GPU, on that device (:mod:`xfast.align.device`): the states never
leave it and only word pairs come back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from xfast.align import align_states_batch, align_unit_states, unit_rows, unit_rows_inplace
from xfast.align.scores import link_scores
from xfast.errors import ParameterError, check_choice, msg
from xfast.models.encoder import Encoder, States, Subwords

__all__ = ["Aligner", "EXTRACTIONS", "METHODS", "TOKEN_TYPES"]

METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")
TOKEN_TYPES = ("bpe", "word")
#: where similarity and extraction run: the host's compiled kernels, or the encoder's torch device
EXTRACTIONS = ("host", "device")


class Aligner:
    """Align batches of sentence pairs with a multilingual encoder.

    ``model``: a registry name (default ``"e5-small"``, the embedded aligner) or a local
    Hugging Face directory; ``layer``: hidden layer whose states are compared (docs/alignment.md);
    ``method``: ``itermax`` (SimAlign, the paper's choice), ``inter``, ``fwd``, ``rev``, ``mwmf``
    or ``softmax`` (AWESoME, raw dot products with ``threshold``); ``token_type``: ``bpe``
    (subwords, the paper's choice) or ``word`` (subword-averaged word vectors). ``quantize``:
    ``"int8"`` runs the dynamically quantized encoder (about twice as fast on CPU); ``backend``,
    ``device``, ``quantize``, ``threads`` and ``providers`` are the
    :class:`~xfast.models.encoder.Encoder`'s (None: torch on a CUDA GPU, float16; ONNX Runtime
    on CPUs). ``extraction``: ``"device"`` computes similarity and extraction where the torch
    encoder ran (docs/alignment.md, "Extraction on the device"; ``mwmf`` and compat's AWESoME
    order stay on the host), ``"host"`` in the compiled kernels; None: the device for torch on
    CUDA, else the host. ``compat=True`` reproduces the reference (docs/compat.md): sentences
    are truncated at the model's limit (later words get no pairs; the default encodes them in
    windows) and AWESoME pairs come in the reference's order.

    ``model`` may also be an NLLB-200 translation checkpoint (a registry name such as
    ``"nllb-600m"``, its Hugging Face directory, or xfast's CTranslate2 export of it): its
    encoder aligns (docs/alignment.md), by default at its last layer with ``softmax``
    (``method=None`` picks ``softmax`` for a translator's encoder, ``itermax`` otherwise), and
    each side is read with its language (``langs`` of :meth:`align_batch`, ``lang`` of
    :meth:`encode`).

    >>> aligner = Aligner()                                   # doctest: +SKIP
    >>> aligner.align_batch([["Hello", "world"]], [["Hallo", "Welt"]])   # doctest: +SKIP
    [array([[0, 0], [1, 1]], dtype=int32)]
    """

    def __init__(self, model: str | os.PathLike = "e5-small", *, layer: int | None = None,
                 method: str | None = None, token_type: str = "bpe", distortion: float = 0.0,
                 max_count: int = 2, alpha: float = 0.9, threshold: float = 1e-3,
                 quantize: str | None = None, threads: int | None = None,
                 providers: Sequence[str] | None = None, backend: str | None = None,
                 compat: bool = False, device: str | None = None, extraction: str | None = None) -> None:
        if method is not None:
            check_choice("method", method, METHODS)
        check_choice("token_type", token_type, TOKEN_TYPES)
        check_choice("extraction", extraction, (None, *EXTRACTIONS))
        if method == "softmax" and token_type != "bpe":
            raise ParameterError(msg("E202", name="token_type", expected="'bpe' with method='softmax'",
                                     value=token_type))
        self.encoder = Encoder(model, layer=layer, backend=backend, quantize=quantize,
                               threads=threads, providers=providers, truncate=compat, device=device)
        on_torch = self.encoder.backend == "torch"
        if extraction == "device" and not on_torch:
            raise ParameterError(msg("E233", backend=self.encoder.backend, value=extraction))
        if extraction is None:
            extraction = "device" if on_torch and self.encoder.device == "cuda" else "host"
        if method is None:
            method = "softmax" if self.encoder.takes_language else "itermax"
            if method == "softmax" and token_type != "bpe":
                raise ParameterError(msg("E202", name="token_type", expected="'bpe' with a translator's encoder "
                                         "(its default method is softmax)", value=token_type))
        self.method, self.token_type, self.compat = method, token_type, compat
        self._kw = dict(method=method, token_type=token_type, distortion=distortion,
                        max_count=max_count, alpha=alpha, threshold=threshold)
        self.extraction = extraction
        self._device = self._rows = None
        if extraction == "device" and method != "mwmf" and not (compat and method == "softmax"):
            from xfast.align.device import DeviceExtractor, DeviceRows  # torch: only for an encoder on torch

            self._device = DeviceExtractor(device=self.encoder.device, precision=self.encoder.precision,
                                           **self._kw)
            self._rows = DeviceRows(self.encoder.device, normalize=method != "softmax" and token_type == "bpe")
        # the encoder's settings as the run keys and the manifest read them; the ONNX backend's
        # keys are those of the runs before the torch backend existed
        self.settings = {"model": str(model), "layer": self.encoder.layer, "quantize": self.encoder.quantize,
                         **self._kw, "compat": compat}
        if on_torch:
            self.settings.update(backend="torch", extraction=extraction)

    def __repr__(self) -> str:
        return (f"Aligner({self.settings['model']!r}, layer={self.settings['layer']}, "
                f"method={self.method!r}, token_type={self.token_type!r})")

    @property
    def stats(self) -> dict[str, int]:
        """The encoder's counts: sentences, subwords, windowed sentences, batches."""
        return self.encoder.stats

    @property
    def takes_language(self) -> bool:
        """True when the encoder reads each sentence's language (a translator's encoder)."""
        return self.encoder.takes_language

    def encode(self, sentences: Sequence[Sequence[str]], *, lang: str | Sequence[str] | None = None) -> list:
        """Encode word-split sentences once, to reuse with :meth:`align_encoded`; ``lang``:
        their language, read by a translator's encoder only."""
        return self.encoder.encode(sentences, lang=lang)

    def align_encoded(self, labeled: Sequence, receiving: Sequence) -> list[np.ndarray]:
        """Word pairs ``(labeled, receiving)`` per pair of :meth:`encode` results."""
        if len(labeled) != len(receiving):
            raise ParameterError(msg("E202", name="receiving", expected=f"{len(labeled)} sentences",
                                     value=f"{len(receiving)} sentences"))
        if self._device is not None:
            offsets, pairs = self._device.align(self._side(labeled), self._side(receiving))
            off = offsets.tolist()
            return [pairs[off[i]:off[i + 1]] for i in range(len(labeled))]
        kw = dict(self._kw)
        if self.compat and self.method == "softmax":
            kw["compat_awesome"] = True
        return align_states_batch([e.states for e in labeled], [e.states for e in receiving],
                                  [e.word_ids for e in labeled], [e.word_ids for e in receiving], **kw)

    @property
    def state_transform(self):
        """The row-wise function the alignment applies to encoder states first (SimAlign's
        row normalisation on subwords; None otherwise): pass it to
        :meth:`Encoder.encode_subwords` to apply it while the states are in cache. With
        extraction on the device it keeps them there (:class:`~xfast.align.device.DeviceRows`)."""
        if self._rows is not None:
            return self._rows
        return unit_rows_inplace if self.method != "softmax" and self.token_type == "bpe" else None

    @property
    def device_stats(self) -> dict[str, int]:
        """Extraction on the device: pairs, chunks and the bytes copied to the host (empty on the host)."""
        return dict(self._device.stats) if self._device is not None else {}

    def _side(self, encoded: Sequence):
        """:meth:`encode` results as one side for the device (their states copied there once)."""
        from xfast.align.device import Side  # loaded already: the device extractor is

        lengths = np.array([len(e.word_ids) for e in encoded], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        states = [np.asarray(e.states, np.float32) for e in encoded]
        flat = np.concatenate(states) if states else np.zeros((0, self.encoder.hidden_size), np.float32)
        rows = self._rows(flat)
        words = np.concatenate([np.asarray(e.word_ids, np.int32) for e in encoded]) if encoded else \
            np.zeros(0, np.int32)
        return Side(rows, offsets[:-1], lengths, words, offsets, self._rows.normalize)

    def align_columnar(self, labeled: Subwords, labeled_states: States, receiving: Subwords,
                       receiving_states: States) -> tuple[np.ndarray, np.ndarray]:
        """Word pairs of a columnar batch (:meth:`Encoder.subwords` and
        :meth:`Encoder.encode_subwords` of each side): ``(offsets int64 (S+1,), pairs int32
        (P, 2))``, the pairs :meth:`align_encoded` gives, in one buffer. The labeled side's
        normalised states are computed once and kept on ``labeled_states``."""
        if len(labeled) != len(receiving):
            raise ParameterError(msg("E202", name="receiving", expected=f"{len(labeled)} sentences",
                                     value=f"{len(receiving)} sentences"))
        if self._device is not None:
            from xfast.align.device import side_of  # loaded already: the device extractor is

            dev = self._device.device
            return self._device.align(side_of(labeled_states, labeled.word_ids, labeled.offsets, dev),
                                      side_of(receiving_states, receiving.word_ids, receiving.offsets, dev))
        lw, rw = _split(labeled.word_ids, labeled.offsets), _split(receiving.word_ids, receiving.offsets)
        kw = dict(self._kw)
        unit = unit_rows_inplace if self.method != "softmax" and self.token_type == "bpe" else None
        if unit is not None:
            del kw["token_type"], kw["threshold"]
            lab, rec = (s if s.transform is unit else s.map(unit_rows) for s in (labeled_states, receiving_states))
            return align_unit_states(lab.sentences(), rec.sentences(), lw, rw, **kw)
        if self.compat and self.method == "softmax":
            kw["compat_awesome"] = True
        pairs = align_states_batch(labeled_states.sentences(), receiving_states.sentences(), lw, rw, **kw)
        counts = np.array([len(p) for p in pairs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = np.concatenate(pairs).astype(np.int32) if pairs else np.zeros((0, 2), np.int32)
        return offsets, flat.reshape(-1, 2)

    def align_batch(self, labeled_sentences: Sequence[Sequence[str]],
                    receiving_sentences: Sequence[Sequence[str]], *,
                    langs: tuple[str, str] | None = None) -> list[np.ndarray]:
        """Align word-split sentence pairs: one int32 (k, 2) array of sorted pairs per pair.
        ``langs``: the languages of the labeled and the receiving side (ISO 639 or
        FLORES-200 codes), needed by a translator's encoder and ignored by other encoders."""
        n = len(labeled_sentences)
        lang = None
        if langs is not None:
            if isinstance(langs, str) or len(langs) != 2:
                raise ParameterError(msg("E202", name="langs", expected="(labeled language, receiving language)",
                                         value=langs))
            lang = [langs[0]] * n + [langs[1]] * len(receiving_sentences)
        # one encoder call for both sides: one pool to sort by length, fuller batches
        both = self.encode([*labeled_sentences, *receiving_sentences], lang=lang)
        return self.align_encoded(both[:n], both[n:])

    def link_scores(self, labeled: Sequence, receiving: Sequence,
                    alignments: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-link similarity: the best ``(cos + 1) / 2`` between the two words' subwords."""
        return link_scores([_host(e.states) for e in labeled], [e.word_ids for e in labeled],
                           [_host(e.states) for e in receiving], [e.word_ids for e in receiving], alignments)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    off = offsets.tolist()
    return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


def _host(states):
    """States as a numpy array (a tensor kept on the device is copied back)."""
    return states if isinstance(states, np.ndarray) else states.float().cpu().numpy()
