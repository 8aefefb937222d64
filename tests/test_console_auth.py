"""Console authentication: password hashing, users files, sessions, and the real app's
enforcement of login, roles and CSRF (httpx against the ASGI app, same event loop)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from alerts import HealthEvent
from console import (
    ConsoleHub,
    HubSink,
    SessionStore,
    UsersFileError,
    create_app,
    hash_password,
    load_users,
    verify_password,
)
from console._auth import parse_users, users_toml
from geo import default_site
from service.runtime import MemorySink, Pipeline

T0 = 1_764_000_000.0
PASSWORDS = {"op": "correct horse", "view": "battery staple"}


class Clock:
    """A settable clock for session expiry."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- hashing and users files ---------------------------------------------------------------


def test_hash_is_salted_scrypt_and_verifies() -> None:
    h1, h2 = hash_password("s3cret"), hash_password("s3cret")
    assert h1.startswith("scrypt$16384$8$1$")
    assert h1 != h2  # salted
    assert "s3cret" not in h1
    assert verify_password("s3cret", h1)
    assert verify_password("s3cret", h2)
    assert not verify_password("s3cret ", h1)
    assert not verify_password("", h1)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "scrypt$16384$8$1$!!$!!", "scrypt$x$8$1$AAAA$AAAA", "bcrypt$1$2$3$4$5"],
)
def test_malformed_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_users_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "users.toml"
    toml.write_text(users_toml({"ion.popescu": ("operator", "pw1"), "v": ("viewer", "pw2")}))
    users = load_users(toml)
    assert {u.name: u.role for u in users.values()} == {"ion.popescu": "operator", "v": "viewer"}
    assert verify_password("pw1", users["ion.popescu"].password_hash)
    js = tmp_path / "users.json"
    js.write_text(json.dumps({"users": {"a": {"role": "viewer", "password": hash_password("x")}}}))
    assert load_users(js)["a"].role == "viewer"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "users"),
        ({"users": {"a": {"role": "admin", "password": "scrypt$1$1$1$a$b"}}}, "users.a.role"),
        ({"users": {"a": {"role": "operator", "password": "hunter2"}}}, "users.a.password"),
        ({"users": {"a": "operator"}}, "users.a"),
    ],
)
def test_bad_users_file_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(UsersFileError) as err:
        parse_users(data, "users.toml")
    assert err.value.field == field


def test_missing_users_file(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read"):
        load_users(tmp_path / "nope.toml")


# -- sessions ------------------------------------------------------------------------------


def _store(clock: Clock, **kw: float) -> SessionStore:
    users = parse_users(
        {
            "users": {
                "op": {"role": "operator", "password": hash_password(PASSWORDS["op"])},
                "view": {"role": "viewer", "password": hash_password(PASSWORDS["view"])},
            }
        },
        "test",
    )
    return SessionStore(users, clock=clock, **kw)  # type: ignore[arg-type]


def test_session_absolute_and_idle_expiry() -> None:
    clock = Clock()
    store = _store(clock, ttl_s=100.0, idle_s=30.0)
    s = store.login("op", PASSWORDS["op"])
    assert s is not None
    assert s.role == "operator"
    for _ in range(4):  # used every 25 s: the idle timer never fires
        clock.t += 25.0
        assert store.get(s.sid) is s
    clock.t += 25.0  # 125 s after login: past the absolute expiry
    assert store.get(s.sid) is None
    s2 = store.login("op", PASSWORDS["op"])
    assert s2 is not None
    clock.t += 31.0  # idle
    assert store.get(s2.sid) is None


def test_wrong_password_unknown_user_and_throttle() -> None:
    clock = Clock()
    store = _store(clock, max_failures=3, lockout_s=60.0)
    assert store.login("op", "wrong") is None
    assert store.login("nobody", PASSWORDS["op"]) is None
    assert store.get(None) is None
    assert store.get("forged") is None
    for _ in range(2):
        assert store.login("op", "wrong") is None
    assert store.locked("op")
    assert store.login("op", PASSWORDS["op"]) is None  # right password, but throttled
    clock.t += 61.0
    assert store.login("op", PASSWORDS["op"]) is not None


# -- the app -------------------------------------------------------------------------------


@pytest.fixture
async def app_env() -> AsyncIterator[tuple[httpx.AsyncClient, Pipeline, str]]:
    """The real app over a pipeline with one open ``sensor_fault`` alert."""
    site = default_site()
    hub = ConsoleHub(site, clock=lambda: T0 + 60.0)
    pipe = Pipeline(site, HubSink(MemorySink(), hub), started=T0)
    hub.attach(pipe)
    await pipe.submit([HealthEvent(t=T0 + 5.0, device="TH-01", state="offline")])
    [alert_id] = list(hub.alerts)
    app = create_app(hub, _store(Clock()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, pipe, alert_id


async def _login(client: httpx.AsyncClient, user: str) -> str:
    r = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


async def test_login_cookie_flags_and_no_access_without_session(
    app_env: tuple[httpx.AsyncClient, Pipeline, str],
) -> None:
    client, _, alert_id = app_env
    for path in ("/api/state", "/api/site", "/api/events", "/api/alerts/x/audit"):
        assert (await client.get(path)).status_code == 401
    assert (await client.get("/api/session")).json() == {"user": None}
    r = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "x"})
    assert r.status_code == 401
    bad = await client.post("/api/login", json={"username": "op", "password": "nope"})
    assert bad.status_code == 401
    r = await client.post("/api/login", json={"username": "op", "password": PASSWORDS["op"]})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "max-age=" in cookie
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    me = (await client.get("/api/session")).json()
    assert me["user"] == "op"
    assert me["role"] == "operator"
    state = (await client.get("/api/state")).json()
    assert [a["alert_id"] for a in state["alerts"]] == [alert_id]


async def test_viewer_cannot_act(app_env: tuple[httpx.AsyncClient, Pipeline, str]) -> None:
    client, pipe, alert_id = app_env
    csrf = await _login(client, "view")
    for action in ("ack", "escalate", "resolve", "assign", "ccp"):
        r = await client.post(
            f"/api/alerts/{alert_id}/{action}",
            json={"note": "looks fine", "unit": "RO-P01"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403, action
        assert "viewer" in r.json()["error"]
    assert pipe.engine.alerts[alert_id].state == "open"
    assert (await client.get("/api/state")).status_code == 200  # but may watch


async def test_csrf_and_origin_rejected(app_env: tuple[httpx.AsyncClient, Pipeline, str]) -> None:
    client, pipe, alert_id = app_env
    csrf = await _login(client, "op")
    url = f"/api/alerts/{alert_id}/ack"
    assert (await client.post(url, json={"note": "n"})).status_code == 403
    r = await client.post(url, json={"note": "n"}, headers={"X-CSRF-Token": csrf + "x"})
    assert r.status_code == 403
    r = await client.post(
        url, json={"note": "n"}, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    )
    assert r.status_code == 403
    assert pipe.engine.alerts[alert_id].state == "open"


async def test_operator_ack_reaches_store_with_audit(
    app_env: tuple[httpx.AsyncClient, Pipeline, str],
) -> None:
    client, pipe, alert_id = app_env
    csrf = await _login(client, "op")
    h = {"X-CSRF-Token": csrf, "Origin": "http://testserver"}
    r = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "  "}, headers=h)
    assert r.status_code == 400  # a note is required
    r = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "camera checked"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    rec = pipe.engine.alerts[alert_id]
    stored = await pipe.store.get_alert(rec.sector, alert_id)
    assert stored is not None
    assert stored["state"] == "acknowledged"
    audit = (await client.get(f"/api/alerts/{alert_id}/audit")).json()
    assert [(e["event"], e["who"], e["why"]) for e in audit][-1] == ("ack", "op", "camera checked")
    # an unknown unit is refused; a known one is tasked (tasking order published)
    r = await client.post(f"/api/alerts/{alert_id}/assign", json={"unit": "XX"}, headers=h)
    assert r.status_code == 409
    r = await client.post(f"/api/alerts/{alert_id}/assign", json={"unit": "RO-P01"}, headers=h)
    assert r.status_code == 200, r.text
    assert pipe.engine.alerts[alert_id].assigned_unit == "RO-P01"
    # logout ends the session server-side
    assert (await client.post("/api/logout", headers=h)).status_code == 200
    assert (await client.get("/api/state")).status_code == 401
