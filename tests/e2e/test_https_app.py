"""Apps and media over https: a private CA signs the test app's certificate; with the CA
in `[webhook] ca_file` the webhook (signed over the https URL) and a <Play> of an https
file work end to end; without it the TLS handshake fails, nothing reaches the app, the
caller hears the application error and a Notification is stored."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from sbtest.app import TestApp
from sbtest.flows import assert_voice_webhook, new_call_sid, call_sids, place_call
from sbtest.server import Number, SwitchboardConfig
from sbtest.standard import MAIN


def _run(*args: str, cwd) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def https_app(tmp_path):
    """A test app serving https with a certificate for 127.0.0.1 signed by a fresh CA."""
    d = tmp_path / "pki"
    d.mkdir()
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=Switchboard Test CA", "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", "app.key", "-out", "app.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", "app.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "app.pem", cwd=d)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "app.pem", d / "app.key")
    app = TestApp(tls=context).start()
    app.ca_file = str(d / "ca.pem")
    yield app
    app.stop()


def _tone_wav(tmp_path) -> bytes:
    out = tmp_path / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(out), "synth", "1.0",
                    "sine", "1000", "vol", "0.5"], check=True)
    return out.read_bytes()


def test_https_app_and_media_with_a_private_ca(make_switchboard, https_app, account, tmp_path):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, https_app.url("/voice"))],
        webhook_ca_file=https_app.ca_file))
    https_app.answer("/tone.wav", _tone_wav(tmp_path), content_type="audio/wav")
    https_app.twiml("/voice", "<Response><Play>/tone.wav</Play><Hangup/></Response>")
    outcome = place_call(sb, tmp_path, MAIN, capture_audio=True)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    voice = https_app.wait_for("/voice", timeout=1)
    assert voice.url.startswith("https://127.0.0.1:")
    assert_voice_webhook(voice, account, to=MAIN)  # signature over the https URL
    assert len(https_app.requests("/tone.wav")) == 1
    loud = [p for p in outcome.audio if any(b not in (0xFF, 0x7F, 0xD5, 0x55) for b in p.payload)]
    assert 40 <= len(loud) <= 60, f"expected ~1 s of tone, got {len(loud)} packets"


def test_https_app_with_an_untrusted_certificate_fails_cleanly(make_switchboard, https_app,
                                                                account, tmp_path):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, https_app.url("/voice"))]))
    https_app.twiml("/voice", "<Response><Say>never</Say></Response>")
    client = sb.client(account)
    before = call_sids(client)
    outcome = place_call(sb, tmp_path, MAIN, capture_audio=True)
    assert outcome.sipp.returncode == 0, "caller must get the error message and a BYE\n" \
        + outcome.sipp.explain()
    assert https_app.requests("/voice") == [], "no request may pass an untrusted certificate"
    sid = new_call_sid(client, before)
    notes = client.calls(sid).notifications.list()
    assert len(notes) == 1 and notes[0].error_code in ("11205", "11237"), \
        [(n.error_code, n.message_text) for n in notes]
