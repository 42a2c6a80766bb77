"""Live prediction: a title, a dropped photo, or both — the top-5 categories with probabilities;
a CSV of products → a results table to download."""

import streamlit as st

from core.serving.batch_csv import BatchRow, parse_batch_csv
from core.serving.predictor import Product
from core.ui import prediction_view as ui
from core.ui.components import empty_state

st.title("Live prediction")
choice = ui.choose_backend()
if choice.backend is None:
    if choice.fallback:
        st.warning(choice.message)
    empty_state(
        "No champion model yet: train one and the gate promotes it (then reload this page).",
        "python -m core pipeline",
    )
    st.stop()
(st.warning if choice.fallback else st.caption)(choice.message)
backend = choice.backend
FAILURES = ui.FAILURES


def answer(product: Product, key: str) -> None:
    try:
        outcome = backend.predict(product)
    except FAILURES as exc:
        st.error(str(exc), icon=":material/error:")
        return
    ui.show_outcome(outcome, key)


text_tab, image_tab, product_tab, batch_tab = st.tabs(["Text", "Image", "Text + image", "Batch (CSV)"])

with text_tab:
    example = st.selectbox("Start from an example", ["—", *ui.EXAMPLES], key="example")
    title, description = ui.EXAMPLES.get(example, ("", ""))
    with st.form("text_form"):
        designation = st.text_input("Title (designation)", value=title, key=f"designation_{example}")
        details = st.text_area(
            "Description (optional, HTML allowed)", value=description, key=f"desc_{example}"
        )
        submitted = st.form_submit_button("Predict", type="primary")
    if submitted:
        if designation.strip():
            answer(Product(designation, details), "text_chart")
        else:
            st.warning("Type a product title first.")

with image_tab:
    upload = st.file_uploader(
        "Drop a product photo (JPEG, PNG or WebP)", type=["jpg", "jpeg", "png", "webp"], key="image_upload"
    )
    if upload is not None:
        data = upload.getvalue()
        preview, result = st.columns([1, 2])
        try:
            preview.image(data, caption=upload.name, width="stretch")
        except Exception:  # a corrupt file cannot be previewed; the prediction below says why
            preview.caption(f"{upload.name}: no preview")
        with result:
            answer(Product(image=data), "image_chart")

with product_tab:
    with st.form("product_form"):
        p_title = st.text_input("Title (designation)", key="product_designation")
        p_description = st.text_area("Description (optional)", key="product_description")
        p_image = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"], key="product_image")
        p_submitted = st.form_submit_button("Predict from text and photo", type="primary")
    if p_submitted:
        if not p_title.strip():
            st.warning("Type a product title first (or use the Image tab for a photo alone).")
        else:
            answer(Product(p_title, p_description, p_image.getvalue() if p_image else None), "product_chart")

with batch_tab:
    st.caption(
        "A CSV with a `designation` column (optional `description`, `id`); the challenge's X_test file works."
    )
    csv = st.file_uploader("Products CSV", type=["csv"], key="batch_upload")
    if csv is not None:
        try:
            rows: list[BatchRow] = parse_batch_csv(csv.getvalue())
            with st.spinner(f"Classifying {len(rows):,} products…"):
                outcome = backend.predict_batch(rows)
        except FAILURES as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            results = ui.batch_frame(outcome)
            rate = len(rows) / max(outcome.seconds, 1e-9)
            st.caption(
                f"{len(rows):,} products by model v{outcome.model_version} in {outcome.seconds:.1f} s "
                f"({rate:,.0f} products/s)"
            )
            st.dataframe(results, hide_index=True, column_config=ui.BATCH_CONFIG, key="batch_results")
            st.download_button(
                "Download predictions (CSV)",
                results.to_csv(index=False).encode(),
                file_name="predictions.csv",
                mime="text/csv",
                key="batch_download",
            )
