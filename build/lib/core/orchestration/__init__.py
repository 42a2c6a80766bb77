"""Prefect orchestration: flows that wire `core.pipeline` steps as tasks (`flows`)."""
