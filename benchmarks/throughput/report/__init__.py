"""What a run writes besides its rows: ``report.md``, ``README_SECTION.md``, the figure, and
the targets evaluated on the run's own figures.

``evaluate_targets`` turns records into targets; ``report_markdown``, ``readme_section``
and ``figure`` turn records and targets into text and a figure. Nothing here measures.
"""

from benchmarks.throughput.report.figure import figure
from benchmarks.throughput.report.markdown import report_markdown
from benchmarks.throughput.report.readme import PUBLISHED, readme_section, update_readme
from benchmarks.throughput.report.targets import evaluate_targets

__all__ = [
    "PUBLISHED",
    "evaluate_targets",
    "figure",
    "readme_section",
    "report_markdown",
    "update_readme",
]
