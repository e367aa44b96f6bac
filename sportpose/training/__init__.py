"""Training: the plain PyTorch loop, checkpoints, and the thin Ray Train adapter that runs one stage (SPEC §6)."""
