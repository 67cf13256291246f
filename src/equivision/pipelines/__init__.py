"""End-to-end pipelines: what the CLI runs, as functions with plain tensors in and out."""
