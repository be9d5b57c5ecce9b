"""Measuring a policy on labelled rows: false-refusal and catch rates with intervals (`score`), threshold
calibration under a false-refusal budget (`calibrate`), what a policy change flips (`diff`), and the HTML report.

Nothing heavy is imported here: the model loads only when an engine is built, matplotlib only for a report."""

from .data import DataError, Row, load_rows
from .stats import Interval, wilson

__all__ = ["DataError", "Interval", "Row", "load_rows", "wilson"]
