"""Low-latency use: a warm :class:`~xfast.serve.projector.Projector` and ``xfast serve``, an HTTP
API over it that batches concurrent requests into one encoder call."""

from xfast.serve.projector import Projection, ProjectedSpan, Projector

__all__ = ["Projector", "Projection", "ProjectedSpan"]
