"""Training tasks; each module registers its task when imported (listed in
:data:`equivision.training.tasks.TASK_MODULES`). The experiments that train them many times
over are in :mod:`equivision.experiments`."""
