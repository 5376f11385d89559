"""The official twilio Node SDK (6.2.0, tests/node) drives Switchboard with only its base
URL changed: lists calls, manages a number, and gets Twilio's errors as RestExceptions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_node_sdk_smoke(switchboard, account):
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "twilio").is_dir():
        pytest.fail("node and tests/node/node_modules are installed by tools/test")
    env = dict(os.environ, SWITCHBOARD_URL=switchboard.base_url, ACCOUNT_SID=account.sid,
               AUTH_TOKEN=account.auth_token, NUMBER="+15005550777")
    run = subprocess.run(["node", str(NODE_DIR / "smoke.js")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "node sdk smoke: ok" in run.stdout
