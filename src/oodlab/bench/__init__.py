"""The bench: train several methods on one benchmark, evaluate each, write one comparison table.

One file each: :mod:`~oodlab.bench.runner` (train → eval per method and seed, the summary),
:mod:`~oodlab.bench.presets` (which methods a preset compares, on what, with which seeds),
:mod:`~oodlab.bench.trends` (the published trends a finished bench is checked against),
:mod:`~oodlab.bench.stats` (mean ± std, paired differences, ranking),
:mod:`~oodlab.bench.report` (the summary tables), :mod:`~oodlab.bench.latex`,
:mod:`~oodlab.bench.figures` and :mod:`~oodlab.bench.cli` (``oodlab bench``, ``oodlab demo``).
"""

from oodlab.bench.presets import PRESETS, BenchMethod, BenchPreset
from oodlab.bench.report import HEADER, METRICS, summary_markdown, table_rows, write_summary
from oodlab.bench.runner import run_bench, run_config, summarise
from oodlab.bench.trends import check_trends, trends_markdown

__all__ = [
    "HEADER",
    "METRICS",
    "PRESETS",
    "BenchMethod",
    "BenchPreset",
    "check_trends",
    "run_bench",
    "run_config",
    "summarise",
    "summary_markdown",
    "table_rows",
    "trends_markdown",
    "write_summary",
]
