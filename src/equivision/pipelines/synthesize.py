"""Novel views from one image by rotating its spherical embedding: ``synthesize(image,
rotations, embedder, decoder)``, the turntable rotations, and loading a decoder with its
embedder. The implementation is :mod:`equivision.models.synthesis` (below the tasks and the
experiments, which use it too); ``docs/synthesis.md`` states the conventions."""

from equivision.models.synthesis import (
    DEFAULT_SYNTHESIS_MODEL,
    Synthesizer,
    band_limit,
    check_pair,
    decode_rotated,
    embed,
    load_synthesizer,
    run_config_of,
    synthesize,
    turntable_rotations,
)

_run_config = run_config_of  # the name experiments.pose imported first

__all__ = ["DEFAULT_SYNTHESIS_MODEL", "Synthesizer", "band_limit", "check_pair", "decode_rotated", "embed",
           "load_synthesizer", "run_config_of", "synthesize", "turntable_rotations"]
