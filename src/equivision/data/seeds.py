"""How seeds of items, streams and epochs are derived from a dataset's seed.

Every derived seed in the data builders comes from one of these functions, each reproducing
(bit for bit) the rule the datasets, experiments and packaged models were built with, so
moving a call site here never changes a number. The rules are:

* :func:`derive_seed` ``(seed, i)`` = ``seed · 100 003 + i``: the ``i``-th shape of a family
  (procedural shapes of :mod:`equivision.recon.data` and :func:`~equivision.data.procedural.make_shapes`);
* :func:`stream_seed` ``(seed, i)`` = ``seed · 1 000 003 + i``: the ``i``-th random stream of
  a builder (the rotations of one ray-cast object, the queries of one training item);
* :func:`name_seed` ``(seed, name)`` = ``(seed · 1 000 003 + crc32(name)) mod 2⁶³``: a named
  item, independent of which other items exist;
* :func:`epoch_seed` ``(seed, epoch, i)`` = ``seed · 1 000 003 + epoch · 10 007 + i``: item
  ``i``'s draw in ``epoch``;
* :func:`shuffle_seed` ``(seed, epoch)`` = ``seed · 7 919 + epoch``: the trainer's order of the
  training set in ``epoch``;
* :func:`rank_seed` ``(seed, rank)`` = ``seed + 1 000 003 · rank``: the dropout and
  augmentation stream of process ``rank`` under torchrun (rank 0 keeps ``seed``);
* :func:`eval_seed` ``(seed)`` = ``seed + 7 919``: a held-out set drawn by the same builder as
  the training set (the reconstruction task's procedural evaluation shapes).

The multipliers are primes; two seeds with indices below the multiplier never share a
derived seed.
"""

from __future__ import annotations

import zlib

#: Multiplier of :func:`derive_seed`.
ITEM_PRIME = 100_003
#: Multiplier of :func:`stream_seed`, :func:`name_seed` and :func:`epoch_seed`.
STREAM_PRIME = 1_000_003
#: Epoch multiplier of :func:`epoch_seed`.
EPOCH_PRIME = 10_007
#: Multiplier of :func:`shuffle_seed` and offset of :func:`eval_seed`.
SHUFFLE_PRIME = 7_919


def derive_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a family seeded with ``seed``: ``seed * 100_003 + index``."""
    return int(seed) * ITEM_PRIME + int(index)


def stream_seed(seed: int, index: int) -> int:
    """The seed of random stream ``index`` of a builder seeded with ``seed``:
    ``seed * 1_000_003 + index``."""
    return int(seed) * STREAM_PRIME + int(index)


def name_seed(seed: int, name: str) -> int:
    """The seed of the item called ``name``: stable across runs and independent of the other
    items (``(seed * 1_000_003 + crc32(name)) % 2**63``)."""
    return (int(seed) * STREAM_PRIME + zlib.crc32(name.encode())) % (2**63)


def epoch_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of item ``index``'s draw in ``epoch``: ``seed * 1_000_003 + epoch * 10_007 + index``."""
    return int(seed) * STREAM_PRIME + int(epoch) * EPOCH_PRIME + int(index)


def shuffle_seed(seed: int, epoch: int) -> int:
    """The seed of the training set's order in ``epoch``: ``seed * 7_919 + epoch``."""
    return int(seed) * SHUFFLE_PRIME + int(epoch)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream: ``seed + 1_000_003 * rank``."""
    return int(seed) + STREAM_PRIME * int(rank)


def eval_seed(seed: int) -> int:
    """The seed of a held-out set drawn like the training set: ``seed + 7_919``."""
    return int(seed) + SHUFFLE_PRIME
