"""PLACEHOLDER — KL for Independent (sums the base KL over reinterpreted axes)."""
