"""``python -m benchmarks.throughput``: the throughput benchmark's command line."""

from benchmarks.throughput.cli import main

main()
