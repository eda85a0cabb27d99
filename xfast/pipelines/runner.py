"""Earlier home of :class:`~xfast.project.config.ProjectionConfig` (docs/api.md): kept so that code
written against it keeps working. New code imports ``xfast.project.config``."""

from xfast.project.config import ProjectionConfig

__all__ = ["ProjectionConfig"]
