"""Skeleton drawing, contact sheets and plots shared by data inspection, evaluation reports and inference."""
