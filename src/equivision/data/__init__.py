"""Data: the registry of shared real data, procedural shapes, and drawn digits."""

from equivision.data.registry import (
    MODELNET10_CLASSES,
    SHAPENET10_CLASSES,
    UP_AXES,
    Collection,
    Entry,
    class_names,
    find_data_root,
    get_collection,
    list_collections,
    list_entries,
    mesh_files,
    up_axis,
    up_rotation,
)

__all__ = [
    "MODELNET10_CLASSES",
    "SHAPENET10_CLASSES",
    "UP_AXES",
    "Collection",
    "Entry",
    "class_names",
    "find_data_root",
    "get_collection",
    "list_collections",
    "list_entries",
    "mesh_files",
    "up_axis",
    "up_rotation",
]
