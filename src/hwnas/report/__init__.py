"""The search report: one self-contained, offline HTML file."""

from hwnas.report.html import render_report, write_report, write_study_report

__all__ = ["render_report", "write_report", "write_study_report"]
