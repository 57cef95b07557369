"""CovetPy benchmarks: `python -m bench` runs the servers x scenarios matrix (bench/suite)."""
