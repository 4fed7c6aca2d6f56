"""Benchmarks: scripts, not tests (e.g. `python -m bench.db_core`). Figures go to BENCHMARKS.md."""
