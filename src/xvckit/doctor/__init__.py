"""`xvckit doctor`: this machine, its network and its API access measured against the guide's
requirements, with the guide's velocity estimate, the limiting check, and fixes for the
OS tuning. The CLI calls `diagnose`; `fix` plans and applies the tuning."""

from xvckit.doctor.devenv import repository_root
from xvckit.doctor.diagnose import check_ids, diagnose, parse_sections
from xvckit.doctor.report import NO_CHECKS, SECTIONS, Report, history_rows, show_bound, show_value
from xvckit.doctor.setup import Setup, SystemPaths

__all__ = [
    "NO_CHECKS",
    "SECTIONS",
    "Report",
    "Setup",
    "SystemPaths",
    "check_ids",
    "diagnose",
    "history_rows",
    "parse_sections",
    "repository_root",
    "show_bound",
    "show_value",
]
