"""equivision: rotation-equivariant 3D vision on PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("equivision")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from equivision.errors import EquivisionError

__all__ = ["EquivisionError", "__version__"]
