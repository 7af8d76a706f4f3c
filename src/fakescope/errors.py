"""Exceptions that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations


class FakescopeError(Exception):
    """Base class for user-facing errors (bad config, bad data, bad checkpoint)."""


class ConfigError(FakescopeError):
    """A configuration file or override is malformed or names an unknown key."""


class DataError(FakescopeError):
    """A dataset path is missing, empty or laid out in a way we cannot read."""


class CheckpointError(FakescopeError):
    """A checkpoint is missing, incomplete or does not match its model."""


class WeightsUnavailableError(FakescopeError):
    """Pretrained weights were requested but could not be loaded."""


class MissingExtraError(FakescopeError, ImportError):
    """An optional dependency is not installed."""


class CompileError(FakescopeError):
    """torch.compile could not compile the model (no C++ compiler, an unsupported operator): a run-level error,
    raised once, rather than the same failure in every file's record."""
