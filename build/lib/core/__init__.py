"""Rakuten France product classification: the shared package behind the console, CLI, API and flows."""

__version__ = "0.1.0"
