"""Batch codecs past fastavro and json for the hot paths, behind typed protocols."""
