"""Serving a stream: decisions, business rules, champion and shadows, experiments."""
