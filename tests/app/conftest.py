"""Console tests: every test starts with empty Streamlit caches (they outlive one AppTest)."""

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _fresh_streamlit_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()
