"""Data: the registry of shared real data, procedural shapes, and drawn digits."""

from equivision.data.registry import (
    Collection,
    find_data_root,
    get_collection,
    list_collections,
    mesh_files,
)

__all__ = ["Collection", "find_data_root", "get_collection", "list_collections", "mesh_files"]
