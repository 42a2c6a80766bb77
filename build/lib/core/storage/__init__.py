"""Stores read and written by several layers: the inference log (SQLAlchemy: SQLite or PostgreSQL)
and the drift reports' summaries on disk. Serving writes them, monitoring, flows, CLI and console read."""
