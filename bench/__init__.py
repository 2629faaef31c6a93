"""Benchmarks of the kpi-stream worker against a real local broker (`python -m bench.run_all`)."""
