"""The operators' admin API on its own listener: trunks from the configuration are there,
trunks are created/replaced/deleted with operator credentials only, passwords never
come back, bad trunks are refused with a clear message."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from sbtest.server import Number, SwitchboardConfig
from sbtest.standard import MAIN


def _admin(sb, method: str, path: str, body: dict | None = None, password: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{sb.config.admin_port}{path}",
                                     data=data, method=method)
    auth = base64.b64encode(f"admin:{password or sb.config.admin_password}".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, (json.loads(raw) if raw else None)


def test_trunks_through_config_and_admin_api(make_switchboard, app, account):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
        trunks=[{"name": "carrier-a", "gateway": "127.0.0.1:5999", "username": "u",
                 "password": "p", "prefixes": ["1"], "max_channels": 10}]))
    status, listing = _admin(sb, "GET", "/admin/v1/trunks")
    assert status == 200
    assert [t["name"] for t in listing["trunks"]] == ["carrier-a"]
    assert listing["trunks"][0]["has_password"] is True
    assert "password" not in listing["trunks"][0]

    status, _ = _admin(sb, "GET", "/admin/v1/trunks", password="wrong")
    assert status == 401

    status, created = _admin(sb, "PUT", "/admin/v1/trunks/carrier-b",
                             {"gateway": "127.0.0.1:5998", "prefixes": ["44"], "strip_plus": True})
    assert status == 200, created
    assert created["sid"].startswith("TK") and created["prefixes"] == ["44"]
    status, error = _admin(sb, "PUT", "/admin/v1/trunks/broken", {"gateway": "nowhere"})
    assert status == 400 and "gateway" in error["message"]

    status, _ = _admin(sb, "DELETE", "/admin/v1/trunks/carrier-b")
    assert status == 204
    status, _ = _admin(sb, "GET", "/admin/v1/trunks/carrier-b")
    assert status == 404
    # The Twilio API does not serve the admin routes, and the admin listener no Twilio ones.
    status, _ = _admin(sb, "GET", f"/2010-04-01/Accounts/{account.sid}/Calls.json")
    assert status == 404
