"""Evaluation: quality metrics (pure functions), the evaluation classifier, scoring a model, the equilibrium rule."""
