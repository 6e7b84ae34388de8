"""Evaluation: metrics, cached extraction, the evaluate entry point and reports."""
