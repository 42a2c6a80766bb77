"""The training pipeline: the chain of steps (`chain`, the one definition), the steps themselves
(`steps`), how a classifier is scored (`scoring`) and what evaluation decides and records (`record`)."""

from core.pipeline.chain import STEP_NAMES, STEPS, PipelineResult, run_pipeline

__all__ = ["STEPS", "STEP_NAMES", "PipelineResult", "run_pipeline"]
