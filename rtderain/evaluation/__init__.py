"""Evaluation: metrics, methods, baselines, datasets, scoring and reports."""
