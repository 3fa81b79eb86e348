"""The cleaner: a one-shot maintenance pass (run from cron). Never deletes queued work."""

from jobbers.cleaner.cleaner import run_cleaner
from jobbers.cleaner.decisions import CleanerOptions, CleanerReport

__all__ = ["CleanerOptions", "CleanerReport", "run_cleaner"]
