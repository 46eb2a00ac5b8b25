"""Reports: the comparison, rendered from result directories alone (no Docker, no TensorFlow).

A pure function of the files: the same directories always give the same tables.
The flow, one module each, no import cycle:

- :mod:`harness.results` loads and checks sessions (every run, whatever its state);
- :mod:`.grouping` decides which runs may be averaged and compared;
- :mod:`.model` builds the immutable :class:`~.model.Report` (figures, intervals, ratios);
- :mod:`.tables` turns it into tables; :mod:`.render` into text and Markdown;
- :mod:`.plots` draws the PNGs; :mod:`.export` writes every file.
"""

from harness.report.export import default_out_dir, write_report
from harness.report.model import DEFAULT_SCOPE, SCOPES, Report, build_report
from harness.report.render import render_markdown, render_text, runs_table

__all__ = ["DEFAULT_SCOPE", "SCOPES", "Report", "build_report", "default_out_dir",
           "render_markdown", "render_text", "runs_table", "write_report"]
