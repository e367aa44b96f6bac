"""Hyper-parameter sweeps with Ray Tune and Optuna (SPEC §9): run, trial book, trial functions, report."""
