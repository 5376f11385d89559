"""Call flows shared by the tests: place a SIPp call (optionally capturing the
audio sent to it, optionally doing something while it is up), find the SIDs
of new calls, wait for a call record to reach a status, and the webhook
parameter checks every voice request must pass."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from twilio.rest import Client

from . import ports
from .app import RecordedRequest
from .rtp import RtpCapture, RtpPacket
from .server import Account, Switchboard
from .sipp import SippCall, SippResult

CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")


@dataclass
class CallOutcome:
    sipp: SippResult
    audio: list[RtpPacket]  # RTP sent to SIPp's media port (empty unless captured)
    started_at: float
    ended_at: float


def place_call(sb: Switchboard, workdir: Path, number: str, *,
               scenario: str = "uac_wait_bye.xml", capture_audio: bool = False,
               during: Callable[[SippCall], None] | None = None,
               keys: dict[str, str] | None = None, sets: dict[str, str] | None = None,
               extra: list[str] | None = None, timeout_s: int = 45) -> CallOutcome:
    """Call `number` on Switchboard with a SIPp scenario from tests/peers/ and
    wait for SIPp to finish (SIPp runs in `workdir`/sipp). `during(call)` runs while
    SIPp is up; `extra` are more SIPp arguments (e.g. `-d` for `<pause/>`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    media_port = ports.free_media_port()
    capture = RtpCapture(workdir, media_port).start() if capture_audio else None
    try:
        started = time.monotonic()
        call = SippCall(scenario, workdir / "sipp", target=sb.sip_target,
                        service=number.lstrip("+"), media_port=media_port,
                        keys=keys, sets=sets, extra=extra, timeout_s=timeout_s)
        try:
            if during is not None:
                during(call)
            result = call.wait()
        finally:
            call.kill()
        ended = time.monotonic()
    finally:
        if capture is not None:
            capture.stop()
    return CallOutcome(result, capture.packets() if capture else [], started, ended)


def call_sids(client: Client) -> set[str]:
    return {c.sid for c in client.calls.list()}


def new_call_sid(client: Client, before: set[str], timeout: float = 10.0) -> str:
    """The one call SID that appeared since `before` was taken."""
    deadline = time.monotonic() + timeout
    while True:
        new = call_sids(client) - before
        if len(new) == 1:
            return new.pop()
        if len(new) > 1 or time.monotonic() > deadline:
            raise AssertionError(f"expected exactly one new call in the Calls list, got {sorted(new)}")
        time.sleep(0.2)


def wait_call_status(client: Client, sid: str, statuses: set[str], timeout: float = 10.0):
    """Fetch the call until its status is one of `statuses`; returns the CallInstance."""
    deadline = time.monotonic() + timeout
    while True:
        call = client.calls(sid).fetch()
        if call.status in statuses or time.monotonic() > deadline:
            assert call.status in statuses, \
                f"call {sid} status is {call.status!r}, expected one of {sorted(statuses)}"
            return call
        time.sleep(0.2)


def digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def assert_voice_webhook(request: RecordedRequest, account: Account, *, to: str,
                         from_digits: str | None = None,
                         call_status: str = "ringing") -> str:
    """Twilio's voice parameters and a valid X-Twilio-Signature; returns CallSid."""
    p = request.params
    assert request.signature_valid(account.auth_token), \
        f"invalid X-Twilio-Signature for {request.url}: {request.describe()}"
    assert request.method == "POST", request.describe()
    assert CALL_SID.match(p.get("CallSid", "")), f"CallSid: {request.describe()}"
    assert p.get("AccountSid") == account.sid, request.describe()
    assert p.get("ApiVersion") == "2010-04-01", request.describe()
    assert p.get("Direction") == "inbound", request.describe()
    assert p.get("CallStatus") == call_status, request.describe()
    assert digits(p.get("To")) == digits(to), request.describe()
    assert digits(p.get("Called")) == digits(to), request.describe()
    assert p.get("From"), request.describe()
    assert p.get("Caller") == p.get("From"), request.describe()
    if from_digits is not None:
        assert from_digits in digits(p.get("From")), request.describe()
    return p["CallSid"]
