"""Reading and writing meshes, point clouds and MNIST; every writer is atomic."""

from equivision.io.atomic import (
    MARKER,
    OutputSpec,
    atomic_directory,
    atomic_path,
    atomic_paths,
    check_outputs,
    check_writable,
    remove_stale_temps,
)
from equivision.io.meshes import MESH_FORMATS, Mesh, load_mesh, save_mesh, validate_mesh
from equivision.io.mnist import load_mnist, read_idx
from equivision.io.pointclouds import CLOUD_FORMATS, load_point_cloud, save_point_cloud

__all__ = [
    "CLOUD_FORMATS",
    "MARKER",
    "MESH_FORMATS",
    "Mesh",
    "OutputSpec",
    "atomic_directory",
    "atomic_path",
    "atomic_paths",
    "check_outputs",
    "check_writable",
    "load_mesh",
    "load_mnist",
    "load_point_cloud",
    "read_idx",
    "remove_stale_temps",
    "save_mesh",
    "save_point_cloud",
    "validate_mesh",
]
