"""Machine translation with NLLB (docs/translation.md): CTranslate2, or transformers on torch.

:class:`Translator` runs a CTranslate2 export (converted once into the cache by
:func:`xfast.models.export.translator.export_translator` when a Hugging Face directory is
given), or transformers' ``generate`` on torch (float16 on CUDA): where CTranslate2 cannot load
its CUDA libraries (its wheels need CUDA 12's, and a machine whose torch is built for CUDA 13
may have only those), ``backend="auto"`` takes torch and says why. It takes FLORES-200 codes or ISO codes
(:func:`~xfast.models.flores.flores_code`), tokenizes each stripped text as NLLB does
(``[src_code] pieces </s>``), decodes with the target code forced as the first token
(CTranslate2 ``target_prefix``, transformers ``forced_bos_token_id``), drops special tokens,
and batches sentences sorted by length up to ``max_batch_tokens`` source tokens. Two guards count, without dropping anything, outputs that
are empty and outputs caught in a repetition loop (:attr:`Translator.stats`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from xfast.errors import ModelError, ParameterError, check_choice, msg
from xfast.models.cache import EXPORT_MANIFEST, quiet
from xfast.models.flores import flores_code
from xfast.models.modeldir import tokenizer_of
from xfast.models.registry import locate

__all__ = ["Translator", "TranslatorStats", "is_repetition_loop"]

_CT2 = "model.bin"
_COMPUTE_TYPES = ("int8", "int8_float32", "int8_float16", "float16", "bfloat16", "float32", "default", "auto")


# --------------------------------------------------------------------------- guards


def is_repetition_loop(ids: list[int], *, max_period: int = 4, min_repeats: int = 4) -> bool:
    """True when the output ends with an n-gram (n <= ``max_period``) repeated
    ``min_repeats`` times in a row (``a b a b a b a b``), the mark of a decoding loop."""
    for p in range(1, max_period + 1):
        span = p * min_repeats
        if len(ids) < span:
            break
        tail = ids[-span:]
        if all(tail[k] == tail[k % p] for k in range(span)):
            return True
    return False


@dataclass
class TranslatorStats:
    """Counts over every call of one :class:`Translator`.

    ``empty``: non-empty inputs whose translation is empty. ``repetition_loops``: outputs
    ending in a repeated n-gram (:func:`is_repetition_loop`). ``truncated``: outputs cut by
    ``max_decoding_length``. ``split``: inputs longer than the model accepts, translated in
    pieces whose translations are joined. ``flagged`` keeps ``(call, index, reason)`` of the
    last 1000.
    """

    sentences: int = 0
    empty: int = 0
    repetition_loops: int = 0
    truncated: int = 0
    split: int = 0
    batches: int = 0
    source_tokens: int = 0
    target_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    flagged: list[tuple[int, int, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain-JSON form for reports."""
        d = dict(self.__dict__)
        d["flagged"] = [list(x) for x in self.flagged]
        return d

    def _flag(self, index: int, reason: str) -> None:
        self.flagged.append((self.calls, index, reason))
        del self.flagged[:-1000]


# --------------------------------------------------------------------------- translator


class Translator:
    """NLLB translation of sentences (docs/translation.md).

    ``model``: a CTranslate2 export directory (``model.bin``), a Hugging Face directory or a
    registry name (converted once and cached). ``backend="torch"`` runs transformers
    ``generate`` (needs the Hugging Face directory; from an export, its source) with the same
    beam size, length bound and length-sorted batches. ``backend="auto"``: CTranslate2 where it
    runs (on CUDA: where it loads its CUDA libraries, tried on one short sentence), else torch,
    with a one-line notice saying why (:attr:`notice`); a CTranslate2 that cannot run on CUDA
    when asked for by name is [E440]. ``compute_type`` defaults to int8 on CPU and float16 on
    CUDA (torch: float32 on CPU; its int8 forms run as float16 on CUDA, float32 on CPU). ``max_decoding_length`` bounds the output like transformers'
    ``max_length`` (the leading ``</s>`` and the language code count). ``max_batch_tokens``:
    source tokens per batch after sorting by length. An input longer than the model's
    positions (1,024 tokens for NLLB, language code and ``</s>`` included) is cut at word
    starts into pieces that fit, each translated on its own, and the translations joined in
    order (counted in ``stats.split``), so no input stops a run.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        compute_type: str | None = None,
        threads: int | None = None,
        beam_size: int = 1,
        max_decoding_length: int = 200,
        max_batch_tokens: int = 4096,
        backend: str = "ct2",
    ):
        check_choice("backend", backend, ("ct2", "torch", "auto"))
        check_choice("device", device, ("cpu", "cuda", "auto"))
        for name, value, low in (
            ("beam_size", beam_size, 1),
            ("max_decoding_length", max_decoding_length, 3),
            ("max_batch_tokens", max_batch_tokens, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ParameterError(msg("E202", name=name, expected=f"an int >= {low}", value=value))
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ParameterError(msg("E202", name="threads", expected="a positive int or None", value=threads))
        if compute_type is not None:
            check_choice("compute_type", compute_type, _COMPUTE_TYPES)
        requested = backend
        #: why ``backend="auto"`` took torch (None: it did not); printed once unless quiet
        self.notice: str | None = None
        if backend == "auto":
            backend, self.notice = _auto_backend(device)
        elif backend == "ct2" and importlib.util.find_spec("ctranslate2") is None:
            raise ParameterError(msg("E232"))
        if device == "auto":
            device = "cuda" if _cuda_available(backend) else "cpu"
        self.beam_size = beam_size
        self.max_decoding_length = max_decoding_length
        self.max_batch_tokens = max_batch_tokens
        self.stats = TranslatorStats()
        self.on_batch = None  # called with the inputs of each decoded batch (progress bars)
        self.device = device
        self._open(model, backend, compute_type, threads, requested)
        if self.notice and not quiet():
            print(f"xfast: {self.notice}", file=sys.stderr)

    def _open(self, model, backend: str, compute_type: str | None, threads: int | None, requested: str) -> None:
        """Locate the model for ``backend`` and start its runtime; under ``auto`` a CTranslate2
        that cannot run on CUDA (tried on one short sentence) gives way to torch."""
        self.backend = backend
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else
                                             ("int8" if backend == "ct2" else "float32"))
        self.model_dir = locate(model, backend, kind="translator", marker=_CT2, manifest=EXPORT_MANIFEST,
                                export=_export, described="transformers translator",
                                export_described="a CTranslate2 export")
        self._tok = tokenizer_of(self.model_dir)
        self.max_input_tokens = _max_positions(self.model_dir)
        self._eos = self._tok.token_to_id("</s>")
        self._unk = self._tok.token_to_id("<unk>")
        if backend == "torch":
            self._decode_batch = self._torch_runner(threads)
            return
        try:
            self._decode_batch = self._ct2_runner(threads)
            if self.device == "cuda":  # CUDA's libraries load on first use: one short sentence tries them
                self._decode_batch([[self._tok.id_to_token(self._eos)]], self._tok.id_to_token(self._eos), 3)
        except (RuntimeError, OSError, ValueError) as e:
            if self.device != "cuda":
                raise
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if requested != "auto":
                raise ModelError(msg("E440", reason=reason)) from e
            self.notice = (f"CTranslate2 cannot run on CUDA here ({reason}): translating with transformers on "
                           f"torch, {_torch_compute(compute_type, 'cuda')}")
            self._open(model, "torch", _torch_compute(compute_type, "cuda"), threads, "torch")

    def __repr__(self) -> str:
        return (
            f"Translator({str(self.model_dir)!r}, backend={self.backend!r}, device={self.device!r}, "
            f"compute_type={self.compute_type!r}, beam_size={self.beam_size})"
        )

    # -- runtimes: list of token lists + target code -> list of output id lists (no prefix)

    def _ct2_runner(self, threads: int | None):
        import ctranslate2

        translator = ctranslate2.Translator(
            str(self.model_dir),
            device=self.device,
            compute_type=self.compute_type,
            intra_threads=threads or 0,
            inter_threads=1,
        )

        def run(batch: list[list[str]], tgt: str, max_length: int) -> list[list[int]]:
            # max_decoding_length counts generated tokens after the prefix: the code and
            # the leading </s> of transformers' max_length are the difference
            results = translator.translate_batch(
                batch,
                target_prefix=[[tgt]] * len(batch),
                beam_size=self.beam_size,
                max_decoding_length=max_length - 1,
                max_input_length=0,
                return_scores=False,
                return_end_token=True,
            )
            out = []
            for r in results:
                toks = r.hypotheses[0][1:]  # drop the target code
                out.append([self._id(t) for t in toks])
            return out

        return run

    def _torch_runner(self, threads: int | None):
        import torch
        from transformers import AutoModelForSeq2SeqLM

        if threads is not None:
            torch.set_num_threads(threads)
        self.compute_type = _torch_compute(self.compute_type, self.device)
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(self.compute_type, torch.float32)
        model = AutoModelForSeq2SeqLM.from_pretrained(str(self.model_dir)).eval().to(device=self.device, dtype=dtype)
        pad = self._tok.token_to_id("<pad>")

        def run(batch: list[list[str]], tgt: str, max_length: int) -> list[list[int]]:
            ids = [[self._tok.token_to_id(t) for t in s] for s in batch]
            n = max(map(len, ids))
            input_ids = torch.tensor([s + [pad] * (n - len(s)) for s in ids], device=self.device)
            mask = (input_ids != pad).long()
            with torch.inference_mode():
                # CTranslate2's search, spelled out: no sampling, no penalties, no n-gram ban
                gen = model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    forced_bos_token_id=self._tok.token_to_id(tgt),
                    num_beams=self.beam_size,
                    do_sample=False,
                    max_length=max_length,
                    min_length=0,
                    length_penalty=1.0,
                    repetition_penalty=1.0,
                    no_repeat_ngram_size=0,
                )
            out = []
            for row in gen.tolist():
                row = row[2:]  # the leading </s> and the target code
                while row and row[-1] == pad:
                    row.pop()
                out.append(row)
            return out

        return run

    def _id(self, token: str) -> int:
        """Vocabulary id of a CTranslate2 output token (padding words a converter added
        beyond the tokenizer's vocabulary map to ``<unk>``)."""
        i = self._tok.token_to_id(token)
        return self._unk if i is None else i

    # -- public

    def _max_length(self, value: int | None) -> int:
        if value is None:
            return self.max_decoding_length
        if not isinstance(value, int) or value < 3:
            raise ParameterError(msg("E202", name="max_decoding_length", expected="an int >= 3", value=value))
        return value

    def _code(self, lang: str) -> str:
        code = flores_code(lang)
        if self._tok.token_to_id(code) is None:
            raise ModelError(msg("E434", code=code, lang=lang, path=str(self.model_dir)))
        return code

    def translate_ids(
        self, texts: list[str], src_lang: str, tgt_lang: str, *, max_decoding_length: int | None = None
    ) -> list[list[int]]:
        """Output token ids per text (target code and leading ``</s>`` removed, ``</s>`` kept
        if generated), the raw form :meth:`translate` decodes; used by parity tests."""
        t0 = time.perf_counter()
        max_length = self._max_length(max_decoding_length)
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise ParameterError(msg("E202", name="texts", expected="a list of str", value=type(texts).__name__))
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ParameterError(msg("E303", index=i, problem=f"expected str, got {type(t).__name__}"))
        src, tgt = self._code(src_lang), self._code(tgt_lang)
        stripped = [t.strip() for t in texts]
        todo = [i for i, t in enumerate(stripped) if t]
        encs = self._tok.encode_batch([stripped[i] for i in todo], add_special_tokens=False) if todo else []
        # sources: (text index, tokens); an over-long text gives several, in order
        sources: list[tuple[int, list[str]]] = []
        self._split_last: set[int] = set()
        for i, enc in zip(todo, encs):
            pieces = _pieces(enc.tokens, self.max_input_tokens - 2)
            if len(pieces) > 1:
                self.stats.split += 1
                self._split_last.add(i)
            sources.extend((i, [src, *p, "</s>"]) for p in pieces)
        results: list[list[int]] = [[] for _ in sources]
        order = sorted(range(len(sources)), key=lambda k: len(sources[k][1]))
        k = 0
        while k < len(order):
            j, longest = k, 0
            while j < len(order):
                longest = max(longest, len(sources[order[j]][1]))
                if j > k and longest * (j - k + 1) > self.max_batch_tokens:
                    break
                j += 1
            chunk = order[k:j]
            for s_, ids in zip(chunk, self._decode_batch([sources[s_][1] for s_ in chunk], tgt, max_length)):
                results[s_] = ids
            self.stats.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(chunk))
            k = j
        out: list[list[int]] = [[] for _ in texts]
        for (i, _), ids in zip(sources, results):
            if out[i] and out[i][-1] == self._eos:  # a piece's end is not the sentence's
                out[i].pop()
            out[i].extend(ids)
        self.stats.source_tokens += sum(len(toks) for _, toks in sources)
        self.stats.seconds += time.perf_counter() - t0
        return out

    def translate(
        self, texts: list[str], src_lang: str, tgt_lang: str, *, max_decoding_length: int | None = None
    ) -> list[str]:
        """Translations of ``texts`` from ``src_lang`` to ``tgt_lang`` (ISO or FLORES-200 codes).

        ``max_decoding_length`` overrides the translator's bound for this call (EasyProject
        uses 400 for marked sentences, 200 for entities). Empty or blank inputs give ``""``
        without decoding. Raises :class:`~xfast.errors.ParameterError` [E402] for a language
        NLLB-200 lacks.
        """
        max_length = self._max_length(max_decoding_length)
        outputs = self.translate_ids(texts, src_lang, tgt_lang, max_decoding_length=max_length)
        self.stats.calls += 1
        result = []
        for i, ids in enumerate(outputs):
            text = self._tok.decode(ids, skip_special_tokens=True).strip() if ids else ""
            if i in self._split_last:
                self.stats._flag(i, "split")
            if texts[i].strip():
                self.stats.sentences += 1
                self.stats.target_tokens += len(ids)
                if not text:
                    self.stats.empty += 1
                    self.stats._flag(i, "empty")
                content = ids[:-1] if ids and ids[-1] == self._eos else ids
                if ids and ids[-1] != self._eos and (len(ids) >= max_length - 2 or i in self._split_last):
                    self.stats.truncated += 1
                    self.stats._flag(i, "truncated")
                if is_repetition_loop(content):
                    self.stats.repetition_loops += 1
                    self.stats._flag(i, "repetition_loop")
            result.append(text)
        return result


def _torch_compute(compute_type: str | None, device: str) -> str:
    """The torch dtype name of a compute type: CTranslate2's int8 forms have none, and run in
    float16 on CUDA and float32 on a CPU."""
    if compute_type in ("float16", "bfloat16", "float32"):
        return compute_type
    return "float16" if device == "cuda" else "float32"


def _auto_backend(device: str) -> tuple[str, str | None]:
    """``backend="auto"`` before a model loads: CTranslate2 unless it is missing, or the device
    is a GPU it does not see while torch does; ``(backend, notice)``. Whether CTranslate2 loads
    its CUDA libraries is tried when it starts (:meth:`Translator._open`)."""
    if importlib.util.find_spec("ctranslate2") is None:
        return "torch", "CTranslate2 is not installed: translating with transformers on torch"
    if device == "cpu":
        return "ct2", None
    from xfast.models.backends import torch_cuda

    try:
        import ctranslate2

        ct2_gpus = ctranslate2.get_cuda_device_count()
    except Exception:  # noqa: BLE001 - a broken CUDA runtime counts as none
        ct2_gpus = 0
    if ct2_gpus == 0 and torch_cuda(probe=device == "cuda") is None:
        return "torch", "CTranslate2 sees no CUDA device and torch does: translating with transformers on torch"
    return "ct2", None


def _cuda_available(backend: str) -> bool:
    try:
        if backend == "ct2":
            import ctranslate2

            return ctranslate2.get_cuda_device_count() > 0
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no CUDA runtime means CPU
        return False


def _pieces(tokens: list[str], size: int) -> list[list[str]]:
    """``tokens`` cut into pieces of at most ``size``, each starting at a word start (a token
    beginning with ``▁``) where one lies in the second half of the piece."""
    out, start = [], 0
    while len(tokens) - start > size:
        cut = start + size
        for k in range(start + size, start + size // 2, -1):
            if tokens[k].startswith("\u2581"):
                cut = k
                break
        out.append(tokens[start:cut])
        start = cut
    out.append(tokens[start:])
    return out


def _max_positions(model_dir: Path) -> int:
    """Longest input the model accepts: ``max_position_embeddings`` of its Hugging Face
    config (the export's source for a CTranslate2 directory); NLLB's 1,024 if unknown."""
    for cfg in (model_dir / "config.json", _export_source(model_dir) / "config.json"):
        try:
            value = json.loads(cfg.read_text(encoding="utf-8")).get("max_position_embeddings")
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and value > 2:
            return value
    return 1024


def _export_source(model_dir: Path) -> Path:
    try:
        return Path(json.loads((model_dir / EXPORT_MANIFEST).read_text(encoding="utf-8"))["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return model_dir



def _export(hf_dir: Path) -> Path:
    """The cached CTranslate2 conversion of ``hf_dir``, made first when missing. The converter
    imports ctranslate2 and transformers at its top, so it is imported here, only when needed."""
    from xfast.models.export.translator import export_translator

    return export_translator(hf_dir)


def __getattr__(name: str):
    """``export_translator``, which moved to :mod:`xfast.models.export.translator`
    (ctranslate2's converter at its top), still importable from here: loaded when first asked for."""
    if name == "export_translator":
        from xfast.models.export.translator import export_translator

        return export_translator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
