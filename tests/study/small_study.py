"""The tiny bias–variance study that subprocess and multi-process tests run.

k1 only (one group per case), N = 16 … 64, 16 replicates, no timing: seconds per run.
The importance and k-NN groups go through the same sharded runner
(tests/study/test_sweep.py).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "bias_variance_quick.toml"

SMALL = [
    "--config", str(QUICK),
    "--set", "sweep.replicates=16",
    "--set", "sweep.log2_min=4",
    "--set", "sweep.log2_max=6",
    "--set", "sweep.chunk=4",
    "--set", 'estimators.use=["k1"]',
    "--set", "timing.cases=[]",
    "--set", "report.bootstrap=100",
]  # fmt: skip
