"""Every offline step that turns a checkpoint into what the runtime loads.

- :mod:`xfast.models.export.encoder`: an encoder cut after layer L, to ONNX (packed graph for
  BERT and XLM-R layouts);
- :mod:`xfast.models.export.quantize`: int8 dynamic quantization and the float16 recipe;
- :mod:`xfast.models.export.tagger`: a token classifier, to ONNX;
- :mod:`xfast.models.export.translator`: an NLLB/M2M100 checkpoint, to CTranslate2.

Like CTranslate2's converters, each module imports its toolchain (torch, transformers, onnx,
ctranslate2) once at its top, guarded so that a missing package is raised only when an export
runs; the runtime (:mod:`xfast.models.encoder`, :mod:`~xfast.models.tagger`,
:mod:`~xfast.models.translator`) imports an exporter only when a model must be built first, and
``import xfast`` imports none. Exports are cached by content (:mod:`xfast.models.cache`): their
keys hash the model files, the package versions and each exporter's recipe numbers, not where
the code lives.
"""
