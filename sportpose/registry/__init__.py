"""MLflow tracking, the pyfunc model, registering and the champion rule, and loading ``models:/`` URIs and
checkpoints back into models (SPEC §8)."""
