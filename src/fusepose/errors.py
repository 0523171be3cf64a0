"""Exceptions for bad user input. The CLI prints them as one line, without a traceback.

Every message names the offending file (or flag) and the problem.
"""


class FusePoseError(Exception):
    """Base class: an error the user can fix (bad file, bad flag, wrong checkpoint)."""


class DataError(FusePoseError, ValueError):
    """An image or annotation file is missing, unreadable or malformed."""


class ResultsError(FusePoseError, ValueError):
    """A results / predictions file is malformed or does not match the ground truth."""


class CheckpointError(FusePoseError, ValueError):
    """A checkpoint is unreadable, or belongs to another model."""


class ConfigError(FusePoseError, ValueError):
    """A config file or override is invalid (unknown key, wrong type)."""


class SourceError(FusePoseError, ValueError):
    """An inference source (image, folder, video, webcam) cannot be opened."""


class NonFiniteLossError(FusePoseError):
    """The training loss became NaN or infinite; training stopped."""
