"""Figures (matplotlib, Agg backend) shared by the CLI and the demo report.

Plotting helpers live here, below the commands and the demo that use them, so that neither
has to import the other; a figure module may use the data layers (``sphere``, ``geometry``,
``io``...), never ``cli``, ``demo`` or ``pipelines``.
"""

from equivision.figures.sphere import render_sphere_signal

__all__ = ["render_sphere_signal"]
