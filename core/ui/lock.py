"""The console's locks. The admin lock: with `RAKUTEN_CONSOLE_ADMIN_TOKEN` set, actions that change the
platform (retrain, cancel, promote, roll back, reload the served model, re-ingest) stay disabled until
the token is entered in the sidebar. The review lock: with `RAKUTEN_REVIEW_TOKEN` or the admin token set,
the Review page asks for either (an unlocked admin may review). Unlocking lasts for the browser session;
a changed token locks it again.

Buttons are drawn disabled while locked, and their callbacks check again (`refused`), so a stale page
cannot slip an action through."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

import streamlit as st

from core.ui.cached import settings

_KEY: Final = "admin_unlocked"
LOCKED_HELP: Final = "Locked: enter the admin token in the sidebar to enable this action."
REFUSED: Final = "This action is locked: enter the admin token in the sidebar first."


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token() -> str | None:
    token = settings().console_admin_token
    return token.get_secret_value() if token is not None else None


def enabled() -> bool:
    """Whether a lock is configured at all."""
    return _token() is not None


def locked() -> bool:
    token = _token()
    return token is not None and st.session_state.get(_KEY) != _digest(token)


def refused(flash_key: str) -> bool:
    """For widget callbacks: True (and an error flashed under `flash_key`) when the console is locked."""
    if locked():
        st.session_state[flash_key] = ("error", REFUSED)
        return True
    return False


def help_text(help: str | None = None) -> str | None:
    """A button's help: why it is disabled while locked, else its own help."""
    return LOCKED_HELP if locked() else help


def _unlock() -> None:
    token, typed = _token(), st.session_state.get("admin_token_input", "")
    st.session_state["admin_token_input"] = ""
    if token is not None and hmac.compare_digest(typed.encode(), token.encode()):
        st.session_state[_KEY] = _digest(token)
        st.session_state.pop("admin_error", None)
    else:
        time.sleep(1.0)  # slows guessing down
        st.session_state["admin_error"] = "Wrong admin token."


def _lock() -> None:
    st.session_state.pop(_KEY, None)


def sidebar() -> None:
    """The lock's state and the token field (nothing when no token is configured)."""
    if not enabled():
        return
    with st.sidebar:
        st.caption("Admin actions")
        if not locked():
            st.badge("Unlocked", icon=":material/lock_open:", color="green")
            st.button("Lock", key="admin_lock", on_click=_lock, icon=":material/lock:")
            return
        st.badge("Locked", icon=":material/lock:", color="orange")
        st.text_input(
            "Admin token",
            type="password",
            key="admin_token_input",
            help="RAKUTEN_CONSOLE_ADMIN_TOKEN: enables retrain, promote, roll back, reload",
        )
        st.button("Unlock", key="admin_unlock", on_click=_unlock)
        error = st.session_state.pop("admin_error", None)
        if error:
            st.error(error)


# --- the review lock -------------------------------------------------------------------------------
_REVIEW_KEY: Final = "review_unlocked"


def _review_tokens() -> list[str]:
    s = settings()
    found = [t.get_secret_value() for t in (s.review_token, s.console_admin_token) if t is not None]
    return [t for t in found if t]


def review_locked() -> bool:
    """Reviewing needs the reviewer token or the console's admin token, when either is set."""
    tokens = _review_tokens()
    if not tokens or (enabled() and not locked()):
        return False
    digest = st.session_state.get(_REVIEW_KEY)
    return not any(digest == _digest(t) for t in tokens)


def _review_unlock() -> None:
    typed = st.session_state.get("review_token_input", "")
    st.session_state["review_token_input"] = ""
    for token in _review_tokens():
        if hmac.compare_digest(typed.encode(), token.encode()):
            st.session_state[_REVIEW_KEY] = _digest(token)
            st.session_state.pop("review_lock_error", None)
            return
    time.sleep(1.0)  # slows guessing down
    st.session_state["review_lock_error"] = "Wrong reviewer token."


def review_unlock_form() -> None:
    """The Review page's token field, while reviewing is locked."""
    error = st.session_state.pop("review_lock_error", None)
    if error:
        st.error(error)
    st.info("Reviewing is locked: enter the reviewer token (RAKUTEN_REVIEW_TOKEN) or the admin token.")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.text_input("Reviewer token", type="password", key="review_token_input")
    right.button("Unlock", key="review_unlock", on_click=_review_unlock, width="stretch")
