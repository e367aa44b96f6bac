"""Paper reproductions as one command each (SPEC §10): studies, their kinds, and variant training."""
