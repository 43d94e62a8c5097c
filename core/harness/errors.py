"""The data errors of the harness, in a module that imports nothing.

:mod:`gatelab.core.harness.data` raises them and :mod:`gatelab.core.registry` builds
:class:`DatasetNotFoundError` for an unknown dataset; keeping them here lets both import them
without importing each other. The CLI reports a :class:`DataError` as one message (exit code 2).
"""

from __future__ import annotations

__all__ = ["ChecksumError", "DataError", "DatasetNotFoundError", "NonFiniteLossError"]


class DataError(Exception):
    """Base class of data errors the CLI reports as one message (exit code 2)."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset (or some of its files) is not in the data directory; the message says where to get it."""


class ChecksumError(DataError, ValueError):
    """A dataset file's sha256 differs from the published one; the message names file and digests."""


class NonFiniteLossError(DataError, FloatingPointError):
    """A train/val/test step gave a NaN or infinite loss; the message names the stage, the global
    step, the batch index and the first non-finite input (or says that every input was finite,
    i.e. the model or the loss diverged)."""
