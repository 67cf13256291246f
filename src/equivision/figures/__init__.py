"""Figures (matplotlib, Agg backend) shared by the CLI, the demo report and the pipelines.

Plotting helpers live here, below the commands and the demo that use them, so that neither
has to import the other; a figure module may use the data layers (``render``, ``sphere``,
``geometry``, ``io``...), never ``cli``, ``demo`` or ``pipelines``. Every figure is written
as a PNG through a temporary file (:func:`equivision.io.atomic.atomic_path`).
"""

from equivision.figures.images import image_grid, save_group_maps, save_image_grid, save_image_row
from equivision.figures.shapes import (
    draw_mesh,
    frame_cube,
    save_cloud_row,
    save_mesh_row,
    save_reconstruction_preview,
    scatter_cloud,
)
from equivision.figures.sphere import equirect_map, render_sphere_signal, save_sphere_maps

__all__ = [
    "draw_mesh",
    "equirect_map",
    "frame_cube",
    "image_grid",
    "render_sphere_signal",
    "save_cloud_row",
    "save_group_maps",
    "save_image_grid",
    "save_image_row",
    "save_mesh_row",
    "save_reconstruction_preview",
    "save_sphere_maps",
    "scatter_cloud",
]
