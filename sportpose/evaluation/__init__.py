"""Metrics (PoseTrack AP, PCKh, 3D errors), 2D and 3D evaluation, reports, complexity and feature similarity
(SPEC §7)."""
