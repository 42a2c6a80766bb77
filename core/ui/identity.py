"""Who is using the console and what they may do.

Outside the embedded default people sign in through the identity provider (`st.login`, OpenID Connect);
their roles come from a claim of the ID token (`RAKUTEN_OIDC_ROLES_CLAIM`, mapped by
`RAKUTEN_OIDC_ROLE_MAP`). The embedded default is one local user with every role. A break-glass admin
(`RAKUTEN_CONSOLE_ADMIN_TOKEN`) can sign in on the sign-in screen while the provider is down, audited as
`break-glass`.

A control the user may not use is drawn disabled with the reason (`disabled`, `why`); its callback runs
the action through `acting` (core.identity.guard: the one check, the one audit write), which asks again
and records a refusal, so a stale page or a crafted rerun gets nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import streamlit as st

from core.identity.guard import ANONYMOUS, BREAK_GLASS, Act, Guard, console_refusal
from core.identity.roles import LABELS, NEEDS, Action, Principal, display_name, may, roles_from_claims
from core.identity.roles import local_user as _local_user
from core.ui.cached import settings

_GLASS: Final = "break_glass"  # digest of the break-glass token entered this session
__all__ = ["Action", "acting", "allowed", "disabled", "refusal", "sidebar", "user", "why"]


@st.cache_resource(show_spinner=False)
def _guard(audit_url: str) -> Guard:
    return Guard(settings(), "console")


def guard() -> Guard:
    return _guard(str(settings().audit_url))


@st.cache_resource(show_spinner=False)
def _local() -> Principal:
    return _local_user()


def refusal() -> str | None:
    """Why this console must serve nobody (no sign-in where it is needed), else None."""
    # unset under AppTest (no socket); a real server's address was checked at start by core.ui.serve
    return console_refusal(settings(), st.get_option("server.address") or "127.0.0.1")


def user() -> Principal | None:
    """The signed-in person (None: nobody yet, the sign-in screen shows)."""
    s = settings()
    glass = _glass_token()
    if glass is not None and st.session_state.get(_GLASS) == _digest(glass):
        return BREAK_GLASS
    if not s.sign_in:
        return _local()
    info = st.user
    if not info.get("is_logged_in"):
        return None
    claims = _claims()
    if _stale(claims, s.oidc_session_hours):
        return None
    subject = str(claims.get("sub", ""))
    return Principal(
        name=display_name(claims, subject or "unknown"),
        roles=roles_from_claims(claims, s.oidc_roles_claim, s.oidc_role_map),
        via="oidc",
        subject=subject,
    )


def _claims() -> dict[str, object]:
    """The ID token's claims Streamlit keeps for the signed-in person (not the tokens themselves)."""
    return {k: v for k, v in st.user.to_dict().items() if k != "tokens"}


def _stale(claims: Mapping[str, object], hours: float) -> bool:
    """Signed in longer ago than a session lasts (roles taken away at the provider must not live on in
    the console's month-long cookie)."""
    when = claims.get("auth_time", claims.get("iat"))
    if not isinstance(when, int | float):
        return False
    return time.time() - float(when) > hours * 3600


def session_expired() -> bool:
    """Whether the person was signed in, but too long ago (the sign-in screen says so)."""
    s = settings()
    if not s.sign_in or not st.user.get("is_logged_in"):
        return False
    return _stale(_claims(), s.oidc_session_hours)


def allowed(action: Action) -> bool:
    who = user()
    return who is not None and may(who, action)


def disabled(action: Action) -> bool:
    return not allowed(action)


def why(action: Action, help: str | None = None) -> str | None:
    """A control's help: why it is disabled for this user, else its own help."""
    if allowed(action):
        return help
    who = user()
    held = ", ".join(sorted(who.roles)) if who is not None and who.roles else "no role"
    return f"You ({held}) may not {LABELS[action]}: it needs the {NEEDS[action]} role."


@contextmanager
def acting(action: Action, *, target: str, reason: str = "") -> Iterator[Act]:
    """Run an action as the signed-in user: checked, then recorded once with its outcome."""
    who = user() or _unverified()
    with guard().acting(who, action, target=target, reason=reason, origin=_origin()) as act:
        yield act


def _unverified() -> Principal:
    """Who asks when nobody is signed in now: the person whose sign-in expired (no role: they sign in
    again first), else anonymous — named in the refusal's record either way."""
    if settings().sign_in and st.user.get("is_logged_in"):
        claims = _claims()
        name = display_name(claims, str(claims.get("sub", "")) or "unknown")
        return Principal(name=name, roles=frozenset(), via="oidc-expired", subject=str(claims.get("sub", "")))
    return ANONYMOUS


def actor() -> str:
    """The name recorded with a registry move, a correction or a run."""
    who = user()
    return who.name if who is not None else "anonymous"


def api_credential() -> str | None:
    """What the console presents to the API: its own service token (RAKUTEN_TOKEN), else the API's
    break-glass token when both run from one environment (the local stack)."""
    s = settings()
    secret = s.token or s.api_admin_token
    return secret.get_secret_value() if secret is not None and secret.get_secret_value() else None


def via() -> str:
    """How the signed-in user proved who they are (a run's `via:` tag)."""
    who = user()
    return who.via if who is not None else "none"


def _origin() -> str:
    try:
        address = st.context.ip_address
    except (AttributeError, RuntimeError):
        address = None
    return address if isinstance(address, str) and address else "console"


# --- the break-glass token ---------------------------------------------------------------------------
def _glass_token() -> str | None:
    token = settings().console_admin_token
    value = token.get_secret_value() if token is not None else ""
    return value or None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _break_glass() -> None:
    token, typed = _glass_token(), str(st.session_state.get("break_glass_input", ""))
    st.session_state["break_glass_input"] = ""
    if token is not None and hmac.compare_digest(typed.encode(), token.encode()):
        st.session_state[_GLASS] = _digest(token)
        guard().record(BREAK_GLASS, Action.VIEW, "console", "", "done", "break-glass sign-in", _origin())
        return
    time.sleep(1.0)  # slows guessing down
    anonymous = Principal(name="anonymous", roles=frozenset(), via="break-glass")
    guard().refused(
        anonymous, Action.VIEW, target="console", detail="wrong break-glass token", origin=_origin()
    )
    st.session_state["break_glass_error"] = "Wrong break-glass token."


def _leave_break_glass() -> None:
    st.session_state.pop(_GLASS, None)


# --- what the pages draw -----------------------------------------------------------------------------
def sign_in_screen() -> None:
    """Nobody signed in yet: the provider's sign-in button (and break-glass, when configured)."""
    st.title("Rakuten MLOps console")
    if session_expired():
        hours = settings().oidc_session_hours
        st.warning(f"Your sign-in is over {hours:g} hours old: sign in again.", icon=":material/schedule:")
    else:
        st.info("Sign in to continue: this console operates production models.", icon=":material/lock:")
    st.button("Sign in", key="sign_in", type="primary", icon=":material/login:", on_click=st.login)
    if _glass_token() is not None:
        with st.expander("Identity provider down? Break-glass access"):
            st.caption(
                "The break-glass token (RAKUTEN_CONSOLE_ADMIN_TOKEN) signs you in as an admin; every "
                "action is recorded as `break-glass`."
            )
            st.text_input("Break-glass token", type="password", key="break_glass_input")
            st.button("Use break-glass access", key="break_glass", on_click=_break_glass)
            error = st.session_state.pop("break_glass_error", None)
            if error:
                st.error(error)


def sidebar(who: Principal) -> None:
    """Who is signed in, with what roles, and the way out."""
    with st.sidebar:
        st.caption("Signed in")
        roles = ", ".join(sorted(who.roles)) or "no role"
        if who.via == "local":
            st.markdown(f"**{who.name}** · local user, every role")
            return
        st.markdown(f"**{who.name}** · {roles}")
        if who.via == "break-glass":
            st.button("Leave break-glass", key="leave_break_glass", on_click=_leave_break_glass)
        else:
            st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=st.logout)
