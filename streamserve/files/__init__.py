"""Files in and out: ``score-file`` (a file of rows scored by one model version, in
chunks) and ``backfill`` (a model trained on labelled rows before it goes live)."""
