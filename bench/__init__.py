"""Benchmarks: streamserve against a raw pipe, a hand-written loop and peers.

Run ``python -m bench``.
"""
