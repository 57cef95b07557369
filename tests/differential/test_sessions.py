"""SessionMiddleware under FastAPI (Starlette's) and under CovetPy, compared over several requests
(apps/sessions_app.py): the session each request sees and the Set-Cookie attributes must be the same; the cookie
values differ by signature (itsdangerous' HMAC-SHA1 vs covet's HMAC-SHA256), so each server gets back its own
cookie and the values themselves are not compared. In compat mode (the app's `starlette.middleware.sessions`
import through the shim) a cookie Starlette signed is also read by CovetPy: users stay logged in across the
migration."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any, Optional

import pytest
from cases import Case, case
from conftest import COMPAT, Server
from test_differential import send

# The case parameter makes the `servers` fixture start only this app (see conftest._apps_selected).
FLOW = case("sessions/flow", "GET", "/session")


def _cookie(answer: Any) -> Optional[tuple[str, dict[str, str]]]:
    """The sid cookie the answer sets: its value and its attributes (names and values lowercased; the value and
    `expires` reduced to what they mean)."""
    found = [v for v in answer.headers.get("set-cookie", []) if v.split("=", 1)[0].strip() == "sid"]
    if not found:
        return None
    assert len(found) == 1, found
    first, *attributes = [part.strip() for part in found[0].split(";")]
    value = first.split("=", 1)[1].strip('"')
    parsed: dict[str, str] = {}
    for attribute in attributes:
        name, _, attr_value = attribute.partition("=")
        parsed[name.strip().lower()] = attr_value.strip().lower()
    removed = parsed.get("max-age") == "0" or ("expires" in parsed and parsedate_to_datetime(
        parsed["expires"]).year < 2000)
    if removed:  # a removal: what matters is that it is one, for this path (flags may differ)
        return "<removed>", {"path": parsed.get("path", "")}
    parsed.pop("expires", None)
    return value, parsed


def _get(server: Server, target: str, cookie: Optional[str]) -> tuple[int, Any, Any, list[str]]:
    """Status, JSON body, the sid cookie set (`_cookie`) and the Vary header."""
    headers = {"Cookie": f"sid={cookie}"} if cookie else None
    answer = send(server, case("sessions/step", "GET", target, headers=headers))
    return answer.status, json.loads(answer.body), _cookie(answer), answer.headers.get("vary", [])


def _flow(server: Server) -> list[Any]:
    """What one browser sees through a session's life; each server's cookies go back to it."""
    seen: list[Any] = []
    status, body, set_cookie, vary = _get(server, "/session/set?key=user&value=alice", None)
    assert set_cookie is not None and set_cookie[0] != "<removed>", (server.framework, set_cookie)
    cookie = set_cookie[0]
    seen.append(("set", status, body, set_cookie[1], vary))
    seen.append(("read", *_get(server, "/session", cookie)))  # read only: no cookie written
    status, body, set_cookie, vary = _get(server, "/session/count", cookie)
    assert set_cookie is not None
    seen.append(("count", status, body, set_cookie[1], vary))
    cookie = set_cookie[0]
    status, body, set_cookie, vary = _get(server, "/session/count", cookie)
    assert set_cookie is not None
    cookie = set_cookie[0]
    seen.append(("count again", status, body, vary))
    tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    seen.append(("tampered", *_get(server, "/session", tampered)))
    seen.append(("pop a missing key", *_get(server, "/session/pop?key=nothing", cookie)))  # not a change
    status, body, set_cookie, vary = _get(server, "/session/pop?key=user", cookie)
    assert set_cookie is not None
    seen.append(("pop", status, body, set_cookie[1], vary))
    cookie = set_cookie[0]
    seen.append(("clear", *_get(server, "/session/clear", cookie)))
    seen.append(("clear an empty session", *_get(server, "/session/clear", None)))
    seen.append(("after clear, no cookie", *_get(server, "/session", None)))
    return seen


@pytest.mark.parametrize("c", [FLOW], ids=[FLOW.id])
def test_the_same_session_behaviour(c: Case, servers: dict[tuple[str, str], Server]) -> None:
    reference, covet = _flow(servers["fastapi", c.app]), _flow(servers["covet", c.app])
    assert covet == reference


@pytest.mark.parametrize("c", [FLOW], ids=[FLOW.id])
def test_a_cookie_starlette_signed_is_read_under_the_shim(c: Case, servers: dict[tuple[str, str], Server]) -> None:
    set_cookie = _get(servers["fastapi", c.app], "/session/set?key=user&value=carol", None)[2]
    assert set_cookie is not None
    status, body, reissued, _ = _get(servers["covet", c.app], "/session", set_cookie[0])
    if not COMPAT:  # covet.middleware.sessions reads its own cookies only
        assert (status, body, reissued) == (200, {}, None)
        return
    assert (status, body) == (200, {"user": "carol"})
    assert reissued is not None and reissued[0] != set_cookie[0]  # now covet's cookie
    assert _get(servers["covet", c.app], "/session", reissued[0])[1] == {"user": "carol"}
    forged = set_cookie[0][:-2] + ("AA" if not set_cookie[0].endswith("AA") else "BB")
    assert _get(servers["covet", c.app], "/session", forged)[:3] == (200, {}, None)
