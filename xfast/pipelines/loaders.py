"""The models a pipeline run uses, loaded on first use and shared between its stages.

Models are named by registry name or directory, or given as loaded objects; a fully cached
rerun loads none. Each model's ``*_fields`` describe it for cache keys without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from xfast.errors import ParameterError, msg
from xfast.pipelines.qa import RunReport
from xfast.pipelines.stagecache import model_fingerprint
from xfast.aligner import Aligner
from xfast.models.backends import resolve_backend
from xfast.models.encoder import providers_for, takes_language
from xfast.models.flores import flores_code
from xfast.models.tagger import Tagger
from xfast.models.translator import Translator

__all__ = ["ModelOptions", "Models", "describe_model", "pipeline_aligner", "default_align_methods",
           "align_languages"]

@dataclass
class ModelOptions:
    """How models run: device, CTranslate2 compute type, threads, the aligner's encoder
    settings (layer, token type, number format), the runtime of the aligner's encoder and the
    tagger (``backend``: torch, onnx, or None: torch on a CUDA GPU, else ONNX Runtime) and the
    translator's (``translator_backend``: ct2, torch or auto)."""

    device: str = "cpu"
    compute_type: str | None = None
    threads: int | None = None
    layer: int | None = None
    token_type: str = "bpe"
    quantize: str | None = None
    backend: str | None = None
    translator_backend: str = "auto"

    def __repr__(self) -> str:
        """The dataclass's form, with the runtimes shown only where they are not the defaults:
        run keys hash this text, so the keys of runs made before those fields existed stay."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in _LATER or getattr(self, f.name) != f.default]
        return f"ModelOptions({', '.join(shown)})"


#: ModelOptions fields added after run keys were first pinned
_LATER = ("backend", "translator_backend")


class Models:
    """Models named by registry name or directory, or given as loaded objects, loaded on first
    use (a fully cached rerun loads nothing) and shared between stages that name the same one.

    ``*_fields`` describe a model for cache keys without loading it. A loaded object keeps its
    own settings (a Tagger's ``truncate``, an Aligner's ``compat``).

    One checkpoint named both as translator and as aligner (``--aligner translator``) is held
    once at a time: loading one of the two releases the other (the stages that use them run
    one after the other).
    """

    def __init__(self, options: ModelOptions | None = None, report: RunReport | None = None) -> None:
        self.options = options or ModelOptions()
        self.report = report
        self._loaded: dict[tuple, object] = {}
        self._released: dict[str, dict] = {}  # counts of released aligners, for runtime_stats

    def _get(self, kind: str, spec: object, build, variant: str = ""):
        if not isinstance(spec, (str, Path)):
            self._loaded.setdefault((kind, self.describe(spec)), spec)
            return spec
        key = (kind, str(spec) + variant)
        if key not in self._loaded:
            self._release_twin(kind, str(spec))
            if self.report is None:
                self._loaded[key] = build()
            else:
                with self.report.stage(f"load {kind}"):
                    self._loaded[key] = build()
        return self._loaded[key]

    def _providers(self) -> list[str]:
        """ONNX Runtime providers for ``--device`` (:func:`~xfast.models.encoder.providers_for`)."""
        return providers_for(self.options.device)

    def translator(self, spec):
        """A :class:`~xfast.models.translator.Translator`."""
        o = self.options
        return self._get("translator", spec, lambda: Translator(
            spec, device=o.device, compute_type=o.compute_type, threads=o.threads, backend=o.translator_backend))

    def tagger(self, spec, *, truncate: bool = False):
        """A :class:`~xfast.models.tagger.Tagger`; ``truncate``: docs/compat.md (one pass over
        the first window of a long sentence)."""
        o = self.options
        return self._get("tagger", spec, lambda: Tagger(spec, threads=o.threads, backend=o.backend,
                                                        providers=self._providers(), truncate=truncate),
                         variant=" (truncate)" if truncate else "")

    def aligner(self, spec, *, method: str = "itermax", compat: bool = False):
        """An :class:`~xfast.aligner.Aligner` (its encoder serves every extraction method)."""
        o = self.options
        return self._get("aligner", spec, lambda: Aligner(
            spec, layer=o.layer, method=method, token_type=o.token_type, quantize=o.quantize,
            threads=o.threads, providers=self._providers(), compat=compat, backend=o.backend),
            variant=" (compat)" if compat else "")

    def _backend(self) -> str:
        """The runtime of the aligner's encoder and the tagger, for cache keys (onnx on CPUs)."""
        return resolve_backend(self.options.backend, self.options.device)

    def translator_fields(self, spec) -> dict:
        if isinstance(spec, (str, Path)):
            o = self.options
            backend = "ct2" if o.translator_backend == "auto" and o.device == "cpu" else o.translator_backend
            return {"model": model_fingerprint(spec), "device": o.device, "compute_type": o.compute_type,
                    "backend": backend, "beam_size": 1}
        return {"model": model_fingerprint(spec), "device": spec.device, "compute_type": spec.compute_type,
                "backend": spec.backend, "beam_size": spec.beam_size}

    def tagger_fields(self, spec, *, truncate: bool = False) -> dict:
        if isinstance(spec, (str, Path)):
            fields = {"model": model_fingerprint(spec), "backend": self._backend(), "max_length": None}
        else:
            truncate = getattr(spec, "truncate", False)
            fields = {"model": model_fingerprint(spec), "backend": spec.backend, "max_length": spec.max_length,
                      "labels": list(spec.labels)}
        if truncate:  # only then, so that default keys stay as they were
            fields["truncate"] = True
        return fields

    def aligner_fields(self, spec) -> dict:
        if isinstance(spec, (str, Path)):
            o = self.options
            return {"model": model_fingerprint(spec), "layer": o.layer, "token_type": o.token_type,
                    "quantize": o.quantize, "backend": self._backend(), "distortion": 0.0, "max_count": 2,
                    "alpha": 0.9, "threshold": 1e-3}
        s = spec.settings
        fields = {"model": model_fingerprint(spec), "backend": spec.encoder.backend,
                  **{k: s[k] for k in ("layer", "token_type", "quantize", "distortion", "max_count", "alpha",
                                       "threshold")}}
        if spec.encoder.truncate:  # a loaded compat Aligner: its alignments differ on long input
            fields["truncate"] = True
        return fields

    def _release_twin(self, kind: str, spec: str) -> None:
        """Drop the translator when its checkpoint's encoder is about to load as aligner, and the
        other way round (keeping the released aligner's counts)."""
        if kind not in ("translator", "aligner"):
            return
        for key in [k for k in self._loaded if k[0] != kind and k[0] in ("translator", "aligner")
                    and k[1].split(" (")[0] == spec]:
            obj = self._loaded.pop(key)
            if key[0] == "aligner":
                _add_counts(self._released.setdefault(f"aligner:{key[1]}", {}), obj.stats)

    def runtime_stats(self) -> dict:
        """Counts of the models this run loaded (encoder, tagger), for the QA summary."""
        out = {k: dict(v) for k, v in self._released.items()}
        for (kind, name), obj in self._loaded.items():
            st = obj.stats
            if kind != "translator":  # translator counts come from the cache shards
                _add_counts(out.setdefault(f"{kind}:{name}", {}), st.as_dict() if hasattr(st, "as_dict") else st)
        return out

    def describe(self, spec) -> str:
        """A model's name for reports: the registry name or the directory."""
        return describe_model(spec)


def _add_counts(into: dict, counts) -> None:
    for k, v in dict(counts).items():
        into[k] = into[k] + v if k in into and isinstance(v, (int, float)) else v


def describe_model(spec) -> str:
    """A model's name for reports and run keys: the registry name or the directory."""
    if isinstance(spec, (str, Path)):
        return str(spec)
    return str(getattr(spec, "model_dir", None) or getattr(spec, "settings", {}).get("model") or spec)


def pipeline_aligner(aligner, translator):
    """The aligner a translating pipeline uses: ``"translator"`` names the translating
    checkpoint itself (a loaded Translator: its model directory), whose encoder then aligns
    (docs/alignment.md); anything else as given."""
    if not (isinstance(aligner, str) and aligner == "translator"):
        return aligner
    if isinstance(translator, (str, Path)):
        return translator
    if getattr(translator, "model_dir", None) is None:
        raise ParameterError(msg("E202", name="aligner", expected="'translator' with a translator name, directory "
                                 "or Translator", value=type(translator).__name__))
    return translator.model_dir


def default_align_methods(aligner) -> tuple[str, ...]:
    """Extraction methods when none are asked for: a loaded Aligner's own, ``softmax`` for a
    translator's encoder, else ``itermax``."""
    if hasattr(aligner, "method"):
        return (aligner.method,)
    return ("softmax",) if takes_language(aligner) else ("itermax",)


def align_languages(aligner, labeled: str, receiving: str) -> tuple[str, str] | None:
    """The two sides' FLORES-200 codes for an aligner that reads them (a translator's encoder),
    else None."""
    return (flores_code(labeled), flores_code(receiving)) if takes_language(aligner) else None
