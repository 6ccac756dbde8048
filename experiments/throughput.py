"""The throughput benchmark, run as a script: ``python -m benchmarks.throughput``.

The benchmark is the package ``benchmarks/throughput`` (harness, one module per section,
report). This script runs its command line with the same options, so
``.venv/bin/python experiments/throughput.py --config configs/throughput.toml`` writes the
same ``results/throughput/<run-name>/`` as the module.
"""

import sys
from pathlib import Path

# Run as a script, Python puts experiments/ on the path, not the repository root where the
# benchmarks package lies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput.cli import main

if __name__ == "__main__":
    main()
