"""Hyper-parameter sweeps with Ray Tune and Optuna (SPEC §8), one way down: run -> trials -> book, run -> report
-> book; the sweep spec itself is :mod:`sportpose.spec.sweep`."""
