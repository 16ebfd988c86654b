"""xvckit: infrastructure for AI-accelerated development."""

__version__ = "0.1.0"
