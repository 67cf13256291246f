"""Training tasks of the experiments; each module registers its task when imported
(listed in :data:`equivision.training.tasks.TASK_MODULES`)."""
