"""Access to outside libraries used as test oracles and benchmark anchors."""

from __future__ import annotations

import sys
import types


def import_torch_harmonics():
    """torch-harmonics 0.9.1 without its compiled attention/DISCO kernels, whose binaries do not
    load against torch 2.13; its spherical harmonic transforms do not need them."""
    stubs = {"torch_harmonics.attention": ["AttentionS2", "NeighborhoodAttentionS2"],
             "torch_harmonics.disco": ["DiscreteContinuousConvS2", "DiscreteContinuousConvTransposeS2"]}
    for name, attrs in stubs.items():
        if name not in sys.modules:
            mod = types.ModuleType(name)
            for a in attrs:
                setattr(mod, a, None)
            sys.modules[name] = mod
    import torch_harmonics

    return torch_harmonics
