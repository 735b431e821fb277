"""The hotline's benchmarks: `make bench` (bench/run.py, real SIPp calls against native dialplan)
and P4, scale in one process on the fake ARI server (bench/scale.py)."""
