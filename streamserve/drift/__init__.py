"""Drift: detectors over error, score and feature streams, alerts, retraining policies."""
