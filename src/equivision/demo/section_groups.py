"""Demo section: groups acting on real data, and the equivariance harness (filled below)."""
