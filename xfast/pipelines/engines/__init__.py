"""Where a pipeline's stages run: :mod:`~xfast.pipelines.engines.local` (this process, the model
overlapped with the host work) or :mod:`~xfast.pipelines.engines.ray` (a Ray cluster)."""
