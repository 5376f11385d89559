"""Error paths: malformed SIP on the wire, an app that is down (with and
without a fallback URL), an app answering HTTP 500 or invalid XML, and the
Notifications those errors leave behind."""

from __future__ import annotations

import os
import socket
import time

import pytest

from sbtest.flows import (CALL_SID, assert_voice_webhook, call_sids, new_call_sid,
                          place_call, wait_call_status)
from sbtest.rtp import assert_g711_speech
from sbtest.standard import (APP_BAD_XML, APP_DOWN, APP_HTTP_500, FALLBACK, GATHER_TWO_DIGITS,
                             MAIN, SAY_OK_HANG_UP)


def _sip_message(start_line: str, sock: socket.socket, sb, *, call_id: str,
                 cseq: str, method_headers: str = "") -> bytes:
    host, port = sock.getsockname()
    return (f"{start_line}\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-e2e-{os.urandom(4).hex()};rport\r\n"
            f"From: <sip:garbage@{host}:{port}>;tag=e2e{os.urandom(3).hex()}\r\n"
            f"To: <sip:{MAIN.lstrip('+')}@{sb.sip_target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq}\r\n"
            f"Max-Forwards: 70\r\n{method_headers}"
            f"Content-Length: 0\r\n\r\n").encode()


def _final_response(sock: socket.socket, timeout: float = 3.0) -> str | None:
    """The first non-1xx status line received on `sock`, or None."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except socket.timeout:
            return None
        line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if line.startswith("SIP/2.0 1"):
            continue
        return line
    return None


def test_malformed_sip_keeps_serving(switchboard, app, account, tmp_path):
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    sip = ("127.0.0.1", switchboard.config.sip_port)
    answers: dict[str, str | None] = {}

    def garbage_while_the_call_is_up(call) -> None:
        app.wait_for("/voice", timeout=15)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for junk in [
                os.urandom(300),
                b"\x00" * 64,
                b"hello, is this SIP?",
                b"INVITE sip:x SIP/2.0\r\n\r\n",  # too few headers to answer
                b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
                b"A" * 20000,
                ("INVITE sip:15005550006@127.0.0.1 SIP/2.0\r\nVia: \xff\xfe\r\n"
                 "Content-Length: 99999\r\n\r\n").encode("latin-1"),
                b"\r\n\r\n",  # a keep-alive, not garbage
            ]:
                sock.sendto(junk, sip)
            # a malformed BYE aimed at the live call's dialog must not end it
            sock.sendto(_sip_message(f"BYE sip:{MAIN.lstrip('+')}@{switchboard.sip_target} SIP/2.0",
                                     sock, switchboard, call_id=call.call_id, cseq="x BYE"), sip)
            _final_response(sock, timeout=0.5)
            # enough headers to answer: 400 for a broken start line / a bad CSeq
            sock.sendto(_sip_message("INVITE  SIP/2.0", sock, switchboard,
                                     call_id=f"broken-start-{os.urandom(4).hex()}",
                                     cseq="1 INVITE"), sip)
            answers["broken start line"] = _final_response(sock)
            sock.sendto(_sip_message(f"OPTIONS sip:{MAIN.lstrip('+')}@{switchboard.sip_target} SIP/2.0",
                                     sock, switchboard, call_id=f"bad-cseq-{os.urandom(4).hex()}",
                                     cseq="abc OPTIONS"), sip)
            answers["bad CSeq"] = _final_response(sock)

    outcome = place_call(switchboard, tmp_path, MAIN, scenario="uac_gather_dtmf.xml",
                         during=garbage_while_the_call_is_up)

    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    action = app.wait_for("/digits", timeout=1)
    assert action.param("Digits") == "12", action.describe()
    assert switchboard.alive()
    assert set(answers) == {"broken start line", "bad CSeq"}, "the garbage was never sent"
    for what, line in answers.items():
        assert line is not None and line.startswith("SIP/2.0 400"), \
            f"{what}: expected a 400 response, got {line!r}"
    # and it still takes new calls
    app.reset()
    app.twiml("/voice", SAY_OK_HANG_UP)
    again = place_call(switchboard, tmp_path / "after", MAIN)
    assert again.sipp.returncode == 0, again.sipp.explain()


def test_app_down_fallback(switchboard, app, account, refusing_port, tmp_path):
    app.twiml("/fallback", "<Response><Say>This is the fallback speaking.</Say><Hangup/></Response>")

    outcome = place_call(switchboard, tmp_path, FALLBACK)

    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    fallback = app.wait_for("/fallback", timeout=1)
    assert_voice_webhook(fallback, account, to=FALLBACK)  # same parameters, signed
    assert fallback.param("ErrorCode") == "11205", fallback.describe()
    assert fallback.param("ErrorUrl") == f"http://127.0.0.1:{refusing_port.port}/voice", \
        fallback.describe()


APP_ERRORS = [
    pytest.param(APP_DOWN, "11205", id="connection-refused-11205"),
    pytest.param(APP_HTTP_500, "11200", id="http-500-11200"),
    pytest.param(APP_BAD_XML, "12100", id="invalid-xml-12100"),
]


@pytest.mark.parametrize("number,error_code", APP_ERRORS)
def test_app_down_error_message_and_notification(switchboard, app, account, tmp_path,
                                                 number, error_code):
    app.answer("/http500", "<h1>Internal Server Error</h1>", content_type="text/html", status=500)
    app.answer("/badxml", "<Response><Say>never closed</Response", content_type="text/xml")
    client = switchboard.client(account)
    before = call_sids(client)

    outcome = place_call(switchboard, tmp_path, number, capture_audio=True)

    # answered, told "An application error has occurred", then hung up on
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert_g711_speech(outcome.audio, what="application error message toward SIPp")
    call_sid = new_call_sid(client, before)
    assert CALL_SID.match(call_sid)
    for request in app.requests():
        assert request.param("CallSid") == call_sid, request.describe()
    wait_call_status(client, call_sid, {"completed"})

    for_call = client.calls(call_sid).notifications.list()
    assert [n.error_code for n in for_call] == [error_code], \
        [(n.sid, n.error_code, n.message_text) for n in for_call]
    notification = for_call[0]
    assert notification.call_sid == call_sid
    assert notification.account_sid == account.sid
    assert notification.sid.startswith("NO")
    in_account = [n for n in client.notifications.list() if n.call_sid == call_sid]
    assert [n.sid for n in in_account] == [notification.sid]
    assert in_account[0].error_code == error_code
