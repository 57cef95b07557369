"""Differential cases of SessionMiddleware (apps/sessions_app.py) that one request shows: no cookie, and cookies
that are not valid (neither server sets or removes a cookie then). The multi-request behaviour (a session set,
read back, changed, cleared; the cookie's attributes) is test_sessions.py's: cookie values differ by signature."""

from __future__ import annotations

from cases import Case, case

CASES: list[Case] = [
    case("sessions/no-cookie", "GET", "/session"),
    case("sessions/no-cookie-clear", "GET", "/session/clear"),
    case("sessions/no-cookie-pop", "GET", "/session/pop?key=user"),
    case("sessions/garbage-cookie", "GET", "/session", headers={"Cookie": "sid=garbage"}),
    case("sessions/forged-cookie", "GET", "/session",
         headers={"Cookie": "sid=eyJ1c2VyIjoibWFsbG9yeSJ9.Z1Z1Z1.c2lnbmF0dXJl"}),
    case("sessions/empty-cookie", "GET", "/session/clear", headers={"Cookie": "sid="}),
    case("sessions/other-cookie-name", "GET", "/session", headers={"Cookie": "session=garbage"}),
]
