"""The orchestrations users run: train (spec -> data -> stages -> evaluation -> registry), evaluate, compare,
sweeps, paper reproductions and the tour."""
