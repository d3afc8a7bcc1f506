"""``python -m bench``: run every variant side by side and write docs/BENCHMARKS.md."""

from bench.run import main

raise SystemExit(main())
