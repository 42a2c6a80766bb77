"""Cached data accessors for console pages. The cache key is the ingest report's timestamp, so a new
ingest (from the CLI or the page) is picked up on the next rerun without restarting the console."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.config import Settings, get_settings
from core.data.explore import add_search_columns
from core.data.ingest import OUTPUTS, load_report, load_table
from core.data.validation import ValidationReport


@st.cache_resource
def settings() -> Settings:
    return get_settings()


def report() -> ValidationReport | None:
    """The latest validation report (a small JSON file: read on each rerun, not cached)."""
    return load_report(settings().interim_dir)


@st.cache_data(show_spinner="Loading the ingested table…", max_entries=4)
def _table(interim: str, split: str, version: str) -> pd.DataFrame:
    return add_search_columns(load_table(Path(interim), split))  # type: ignore[arg-type]


def table(split: str, ingested: ValidationReport) -> pd.DataFrame:
    """The ingested split with explorer columns, cached until the next ingest (`ingested.created_at`)."""
    return _table(str(settings().interim_dir), split, ingested.created_at)


def quarantine_csv() -> bytes | None:
    path = settings().interim_dir / OUTPUTS["quarantine"]
    return path.read_bytes() if path.is_file() else None


def report_markdown() -> str | None:
    path = settings().interim_dir / OUTPUTS["report_md"]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def quarantined_rows() -> pd.DataFrame:
    path = settings().interim_dir / OUTPUTS["quarantine"]
    return pd.read_csv(path, dtype=str) if path.is_file() else pd.DataFrame()
