"""The exception hierarchy of equivision.

Every error the library raises on purpose derives from :class:`EquivisionError`, so a user
(or the CLI) can catch them all with one ``except``. Each also derives from the closest
built-in exception (``ValueError``, ``FileNotFoundError``...), so code that already catches
those keeps working. Messages say what is wrong *and* what to do about it.
"""

from __future__ import annotations


class EquivisionError(Exception):
    """Root of every error equivision raises on purpose."""


class InvalidInputError(EquivisionError, ValueError):
    """An argument has the wrong shape, dtype, range or contains NaN/inf."""


class ShapeError(InvalidInputError):
    """A tensor has the wrong number of dimensions or the wrong size along one."""


class NotARotationError(InvalidInputError):
    """A ``(..., 3, 3)`` matrix is not a rotation: not orthogonal, or a reflection (det −1)."""


class DegenerateGeometryError(InvalidInputError):
    """A mesh or point cloud is empty, has no faces, or is too small for the operation."""


class DataFileNotFoundError(EquivisionError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class CorruptFileError(EquivisionError, ValueError):
    """A file exists but cannot be parsed as what it claims to be."""


class UnsupportedFormatError(EquivisionError, ValueError):
    """A file extension or format equivision does not read or write."""


class OutputExistsError(EquivisionError, FileExistsError):
    """Writing would replace an existing file; pass ``overwrite=True`` (``--overwrite``).
    Also raised when ``overwrite`` may not replace what is there (a folder equivision did not
    write, the current or home folder, a folder where a file should go)."""


class OutputNotWritableError(EquivisionError, PermissionError):
    """An output folder cannot be written (read-only mount, permissions, full disk)."""


class OutputClashError(InvalidInputError):
    """Two outputs of one command name the same file."""


class UnknownNameError(EquivisionError, KeyError):
    """A name that a registry does not know (base of the dataset and model variants)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(UnknownNameError):
    """A dataset or collection name that the registry does not know."""


class UnknownModelError(UnknownNameError):
    """A model name that neither the model registry nor the pretrained folder knows."""


class DataNotAvailableError(EquivisionError, FileNotFoundError):
    """The shared data folder (or one of its collections) is not present on this machine."""


class ConfigError(EquivisionError, ValueError):
    """A configuration has unknown keys, wrong types or inconsistent values."""


class CheckpointError(EquivisionError, ValueError):
    """A checkpoint is missing, corrupt, or belongs to another model or configuration."""


class EquivarianceError(EquivisionError, AssertionError):
    """Raised by :func:`equivision.testing.assert_equivariant` when a function is not
    equivariant within the stated tolerance."""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "DataFileNotFoundError",
    "DataNotAvailableError",
    "DegenerateGeometryError",
    "EquivarianceError",
    "EquivisionError",
    "InvalidInputError",
    "NotARotationError",
    "OutputClashError",
    "OutputExistsError",
    "OutputNotWritableError",
    "ShapeError",
    "UnknownDatasetError",
    "UnknownModelError",
    "UnknownNameError",
    "UnsupportedFormatError",
]
