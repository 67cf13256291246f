"""Reading and writing meshes, point clouds and MNIST; every writer is atomic."""

from equivision.io.atomic import atomic_directory, atomic_path, check_writable
from equivision.io.meshes import MESH_FORMATS, Mesh, load_mesh, save_mesh, validate_mesh
from equivision.io.mnist import load_mnist, read_idx
from equivision.io.pointclouds import CLOUD_FORMATS, load_point_cloud, save_point_cloud

__all__ = [
    "CLOUD_FORMATS",
    "MESH_FORMATS",
    "Mesh",
    "atomic_directory",
    "atomic_path",
    "check_writable",
    "load_mesh",
    "load_mnist",
    "load_point_cloud",
    "read_idx",
    "save_mesh",
    "save_point_cloud",
    "validate_mesh",
]
