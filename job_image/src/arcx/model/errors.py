"""The one error type model loading raises; `arcx run` maps it to the configuration-error exit code."""

from __future__ import annotations


class ModelLoadError(Exception):
    """The model could not be loaded; the message says which file or tensor and what to do."""
