"""The pipelines' stages: :mod:`~xfast.pipelines.stages.columnar` (``xfast project``'s batch
stages over columnar arrays), :mod:`~xfast.pipelines.stages.projection` (the one projection path)
and :mod:`~xfast.pipelines.stages.corpus` (the NLLB pipelines' cached stages)."""
