"""``xfast.Aligner``: word-split sentence pairs in, word alignments out (docs/alignment.md, docs/api.md).

One object owns an :class:`~xfast.models.encoder.Encoder` and the extraction settings. The
encoder runs once per side, batched by length; extraction and the subword-to-word union run
in compiled code over the whole batch (:func:`xfast.align.align_states_batch`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from xfast.align import align_states_batch, align_unit_states, unit_rows, unit_rows_inplace
from xfast.align.scores import link_scores
from xfast.errors import ParameterError, check_choice, msg
from xfast.models.encoder import Encoder, States, Subwords

__all__ = ["Aligner", "METHODS", "TOKEN_TYPES"]

METHODS = ("itermax", "inter", "fwd", "rev", "mwmf", "softmax")
TOKEN_TYPES = ("bpe", "word")


class Aligner:
    """Align batches of sentence pairs with a multilingual encoder.

    ``model``: a registry name (default ``"e5-small"``, the embedded aligner) or a local
    Hugging Face directory; ``layer``: hidden layer whose states are compared (docs/alignment.md);
    ``method``: ``itermax`` (SimAlign, the paper's choice), ``inter``, ``fwd``, ``rev``, ``mwmf``
    or ``softmax`` (AWESoME, raw dot products with ``threshold``); ``token_type``: ``bpe``
    (subwords, the paper's choice) or ``word`` (subword-averaged word vectors). ``quantize``:
    ``"int8"`` runs the dynamically quantized encoder (about twice as fast on CPU).
    ``compat=True`` reproduces the reference (docs/compat.md): sentences are truncated at
    the model's limit (later words get no pairs; the default encodes them in windows) and
    AWESoME pairs come in the reference's order.

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
                 providers: Sequence[str] | None = None, backend: str = "onnx",
                 compat: bool = False) -> None:
        if method is not None:
            check_choice("method", method, METHODS)
        check_choice("token_type", token_type, TOKEN_TYPES)
        if method == "softmax" and token_type != "bpe":
            raise ParameterError(msg("E202", name="token_type", expected="'bpe' with method='softmax'",
                                     value=token_type))
        self.encoder = Encoder(model, layer=layer, backend=backend, quantize=quantize,
                               threads=threads, providers=providers, truncate=compat)
        if method is None:
            method = "softmax" if self.encoder.takes_language else "itermax"
            if method == "softmax" and token_type != "bpe":
                raise ParameterError(msg("E202", name="token_type", expected="'bpe' with a translator's encoder "
                                         "(its default method is softmax)", value=token_type))
        self.method, self.token_type, self.compat = method, token_type, compat
        self._kw = dict(method=method, token_type=token_type, distortion=distortion,
                        max_count=max_count, alpha=alpha, threshold=threshold)
        self.settings = {"model": str(model), "layer": self.encoder.layer, "quantize": quantize, **self._kw,
                         "compat": compat}

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
        kw = dict(self._kw)
        if self.compat and self.method == "softmax":
            kw["compat_awesome"] = True
        return align_states_batch([e.states for e in labeled], [e.states for e in receiving],
                                  [e.word_ids for e in labeled], [e.word_ids for e in receiving], **kw)

    @property
    def state_transform(self):
        """The row-wise function the alignment applies to encoder states first (SimAlign's
        row normalisation on subwords; None otherwise): pass it to
        :meth:`Encoder.encode_subwords` to apply it while the states are in cache."""
        return unit_rows_inplace if self.method != "softmax" and self.token_type == "bpe" else None

    def align_columnar(self, labeled: Subwords, labeled_states: States, receiving: Subwords,
                       receiving_states: States) -> tuple[np.ndarray, np.ndarray]:
        """Word pairs of a columnar batch (:meth:`Encoder.subwords` and
        :meth:`Encoder.encode_subwords` of each side): ``(offsets int64 (S+1,), pairs int32
        (P, 2))``, the pairs :meth:`align_encoded` gives, in one buffer. The labeled side's
        normalised states are computed once and kept on ``labeled_states``."""
        if len(labeled) != len(receiving):
            raise ParameterError(msg("E202", name="receiving", expected=f"{len(labeled)} sentences",
                                     value=f"{len(receiving)} sentences"))
        lw, rw = _split(labeled.word_ids, labeled.offsets), _split(receiving.word_ids, receiving.offsets)
        kw = dict(self._kw)
        unit = self.state_transform
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
        return link_scores([e.states for e in labeled], [e.word_ids for e in labeled],
                           [e.states for e in receiving], [e.word_ids for e in receiving], alignments)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    off = offsets.tolist()
    return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
