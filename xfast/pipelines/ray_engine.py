"""Earlier home of :class:`~xfast.pipelines.engines.ray.RaySettings` (docs/api.md): kept so that
code written against it keeps working. New code imports ``xfast.pipelines.engines.ray``."""

from xfast.pipelines.engines.ray import RaySettings

__all__ = ["RaySettings"]
