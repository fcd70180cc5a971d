"""Run container pipelines with a guaranteed finally, and leave nothing behind."""

__version__ = "0.1.0"
