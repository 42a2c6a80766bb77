"""Rendering pieces of the Data explorer: product detail, gallery grid, problems table."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pandas as pd
import streamlit as st

from core.categories import label
from core.data.validation import ValidationReport
from core.features.text import clean_text

TABLE_COLUMNS: Final = ("id", "designation", "category", "description_length", "has_image", "image_status")
TABLE_LIMIT: Final = 5_000
ID_LIMIT: Final = 1_000  # row ids listed per problem in the console
TABLE_CONFIG: Final = {
    "id": st.column_config.NumberColumn("id", format="%d", width="small"),
    "designation": st.column_config.TextColumn("title", width="large"),
    "category": st.column_config.TextColumn("class", width="medium"),
    "description_length": st.column_config.NumberColumn("description chars", width=130),
    "has_image": st.column_config.CheckboxColumn("image", width="small"),
    "image_status": st.column_config.TextColumn("image status", width=100),
}
_GRID: Final = 6


def _image(path: str, caption: str | None = None) -> None:
    if Path(path).is_file():
        st.image(path, caption=caption, width="stretch")
    else:
        st.caption("Image file not found")


def product_detail(row: pd.Series) -> None:
    """Title, class, ids, cleaned description and image of one product."""
    st.divider()
    left, right = st.columns([2, 1])
    with left:
        st.subheader(clean_text(row["designation"]) or "(no title)")
        if "prdtypecode" in row and pd.notna(row["prdtypecode"]):
            st.badge(label(int(row["prdtypecode"])), color="violet")
        st.caption(f"id {row['id']} · product {row['productid']} · image {row['imageid']}")
        desc = clean_text(row["description"])
        if desc:
            st.markdown(desc.replace("\n", "  \n"))
        else:
            st.caption("No description.")
        with st.expander("Raw description (as in the CSV)"):
            st.code(
                row["description"] if pd.notna(row["description"]) else "", language="html", wrap_lines=True
            )
    with right:
        if row["has_image"]:
            _image(row["image_path"], caption=Path(row["image_path"]).name)
        else:
            st.warning(f"Image {row['image_status']}: `{Path(row['image_path']).name}`")


def gallery(rows: pd.DataFrame) -> None:
    """A grid of product images with their titles."""
    if rows.empty:
        st.info("No product of this class has an image.")
        return
    records = rows.to_dict("records")
    for start in range(0, len(records), _GRID):
        for col, rec in zip(st.columns(_GRID), records[start : start + _GRID], strict=False):
            with col:
                _image(rec["image_path"], caption=str(rec["designation"])[:60])


def problems_frame(report: ValidationReport) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "severity": p.severity,
                "split": p.split,
                "problem": p.code,
                "what it means": p.message,
                "rows": p.count,
                "examples": ", ".join(map(str, p.row_ids[:8])) + (" …" if p.count > 8 else ""),
            }
            for p in report.problems
        ]
    )
