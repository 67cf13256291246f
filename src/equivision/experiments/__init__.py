"""Experiments: seeded multi-run comparisons that train several models × protocols × seeds
with the ordinary trainer and summarise them in mean ± std tables, one module per
experiment (:mod:`~equivision.experiments.rotmnist`,
:mod:`~equivision.experiments.shapes_sphere`,
:mod:`~equivision.experiments.modelnet_points`), each run as
``python -m equivision.experiments.<name> OUT_DIR ...``. The scaffolding they share (job
claims, shards, jobs resumed from their checkpoints after an interrupted session, results
files, table formatting, the command line) is
:mod:`equivision.experiments.runner`. The tasks they train stay in :mod:`equivision.tasks`,
where the training engine finds them.
"""
