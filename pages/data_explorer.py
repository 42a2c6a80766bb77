"""Data explorer: summary, class distribution, searchable products, image gallery, validation report."""

import streamlit as st

from core.categories import CODES, label
from core.data.explore import class_distribution, filter_products, sample_class, summarize
from core.ui import cached
from core.ui.actions import data_action, require_data
from core.ui.components import class_distribution_chart, status_badge
from core.ui.explorer_view import (
    ID_LIMIT,
    TABLE_COLUMNS,
    TABLE_CONFIG,
    TABLE_LIMIT,
    gallery,
    problems_frame,
    product_detail,
)

st.title("Data explorer")
report, state = require_data()

splits = [s for s in ("train", "test") if s in report.stats]
split = st.segmented_control("Split", splits, default="train", key="split", required=True) or "train"
df = cached.table(split, report)
summary = summarize(df)

c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Products", f"{summary.rows:,}")
c2.metric("Classes", summary.classes if split == "train" else "—")
c3.metric(
    "Empty descriptions", f"{summary.empty_description_rate:.0%}", help=f"{summary.empty_descriptions:,} rows"
)
c4.metric("Missing images", f"{summary.missing_images:,}")
with c5:
    st.caption("Validation")
    status_badge(report.status)

tab_classes, tab_products, tab_gallery, tab_report = st.tabs(
    ["Classes", "Products", "Gallery", "Validation report"]
)

with tab_classes:
    if split == "train":
        class_distribution_chart(class_distribution(df))
    else:
        st.info("The test split has no labels: switch to train to see the class distribution.")

with tab_products:
    f1, f2, f3, f4 = st.columns([3, 3, 1.4, 1.4])
    query = f1.text_input(
        "Search title and description", key="query", placeholder="e.g. piscine, manette, roman"
    )
    classes = f2.multiselect("Classes", CODES, format_func=label, key="classes", disabled=split != "train")
    images = f3.selectbox("Images", ["all", "with image", "without image"], key="images")
    empty = f4.selectbox("Description", ["any", "empty", "present"], key="empty")
    found = filter_products(
        df,
        query=query,
        codes=classes if split == "train" else (),
        images=images,  # type: ignore[arg-type]
        empty_description={"any": None, "empty": True, "present": False}[empty],
    )
    shown = found.head(TABLE_LIMIT)
    more = f" — showing the first {TABLE_LIMIT:,}, refine the search" if len(found) > TABLE_LIMIT else ""
    st.caption(f"{len(found):,} of {len(df):,} products match{more}. Select a row to see the product below.")
    columns = [c for c in TABLE_COLUMNS if c in shown]
    event = st.dataframe(
        shown[columns],
        key="products",
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        column_config=TABLE_CONFIG,
    )
    picked = event.selection.rows if event else []
    if len(shown):
        product_detail(shown.iloc[picked[0] if picked else 0])

with tab_gallery:
    if split != "train":
        st.info("The gallery groups products by class: switch to the train split.")
    else:
        g1, g2 = st.columns([3, 1])
        code = g1.selectbox("Class", CODES, format_func=label, key="gallery_class")
        count = g2.slider("Images", 6, 30, 12, step=6, key="gallery_count")
        if st.button("Shuffle", icon=":material/shuffle:", key="shuffle"):
            st.session_state["gallery_seed"] = st.session_state.get("gallery_seed", 0) + 1
        gallery(sample_class(df, code, count, seed=st.session_state.get("gallery_seed", 0)))

with tab_report:
    status_badge(report.status)
    st.caption(f"Ingested {report.created_at} from `{report.source_dir}` ({report.naming} file names)")
    for note in report.notes:
        st.caption(f"Note: {note}")
    if report.problems:
        st.dataframe(problems_frame(report), hide_index=True, key="problems")
        for p in report.problems:
            with st.expander(f"{p.code} · {p.split} · {p.count:,} row(s)"):
                st.write(p.message)
                st.code(", ".join(map(str, p.row_ids[:ID_LIMIT])), language=None, wrap_lines=True)
                if p.count > ID_LIMIT:
                    st.caption(f"First {ID_LIMIT:,} of {p.count:,} row ids: the JSON report lists them all.")
    else:
        st.success("No problems found.")
    d1, d2, d3 = st.columns(3)
    md = cached.report_markdown()
    if md:
        d1.download_button(
            "Report (Markdown)", md, "validation_report.md", key="dl_report", icon=":material/download:"
        )
    d2.download_button(
        "Report (JSON)", report.to_json(), "validation_report.json", key="dl_json", icon=":material/download:"
    )
    quarantine = cached.quarantine_csv()
    if quarantine and report.total("rows_quarantined"):
        d3.download_button(
            "Quarantined rows (CSV)",
            quarantine,
            "quarantine.csv",
            key="dl_quarantine",
            icon=":material/download:",
        )
        rows = cached.quarantined_rows()
        st.subheader(f"Quarantined rows ({len(rows):,})")
        st.dataframe(rows, hide_index=True, key="quarantine_rows")
    if state.name == "ready":
        st.caption("Fixed something in the raw files? Ingest them again:")
        data_action(state, key="reingest")
