"""The media process dies mid-call (kill -9 of the pid in data_dir/media.pid):
the caller gets a BYE, the call ends `failed` with a signed status callback,
`run` starts a new media process, and a new call works end to end. Runs on
a private Switchboard so a broken restart cannot spoil other tests."""

from __future__ import annotations

import os
import signal
import time

from sbtest.flows import assert_voice_webhook, place_call, wait_call_status
from sbtest.rtp import assert_g711_speech
from sbtest.server import Number, SwitchboardConfig, runs_binary
from sbtest.standard import GATHER_TWO_DIGITS, MAIN, SAY_OK_HANG_UP

# keeps the call up with a live media session (prompt, then waiting for digits)
LONG_GATHER = ('<Response><Gather numDigits="1" timeout="30">'
               '<Say>Waiting here until the media process fails.</Say></Gather></Response>')


def test_media_process_killed_mid_call(make_switchboard, app, account, tmp_path):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account],
        numbers=[Number(account, MAIN, app.url("/voice"), status_callback=app.url("/status"))]))
    client = sb.client(account)
    media_pid = sb.wait_media_pid(timeout=10)
    app.twiml("/voice", LONG_GATHER)
    killed_at: list[float] = []

    def kill_media(call) -> None:
        app.wait_for("/voice", timeout=15)
        time.sleep(2.5)  # answered, prompt playing
        assert call.proc.poll() is None, "SIPp ended before the media process was killed"
        assert sb.media_pid() == media_pid and runs_binary(media_pid, sb.binary)
        os.kill(media_pid, signal.SIGKILL)
        killed_at.append(time.monotonic())

    outcome = place_call(sb, tmp_path / "first", MAIN, during=kill_media)

    assert killed_at, "the media process was never killed"
    assert outcome.sipp.returncode == 0, "caller got no BYE after the media process died\n" \
        + outcome.sipp.explain()
    assert outcome.ended_at - killed_at[0] < 15, "BYE came too late"
    call_sid = assert_voice_webhook(app.wait_for("/voice", timeout=1), account, to=MAIN)
    call = wait_call_status(client, call_sid, {"failed"})
    assert call.end_time is not None
    status = app.wait_for("/status", timeout=10,
                          where=lambda r: r.param("CallSid") == call_sid)
    assert status.signature_valid(account.auth_token), status.describe()
    assert status.param("CallStatus") == "failed", status.describe()

    # a new media process, and a new call works end to end
    new_pid = sb.wait_media_pid(other_than=media_pid, timeout=30)
    assert new_pid != media_pid
    assert sb.alive()
    app.reset()
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    second = place_call(sb, tmp_path / "second", MAIN, scenario="uac_gather_dtmf.xml",
                        capture_audio=True)
    assert second.sipp.returncode == 0, second.sipp.explain()
    assert app.wait_for("/digits", timeout=1).param("Digits") == "12"
    assert_g711_speech(second.audio, what="prompt after the media restart")
    second_sid = app.wait_for("/voice", timeout=1).param("CallSid")
    assert second_sid != call_sid
    assert wait_call_status(client, second_sid, {"completed"}).status == "completed"


def test_control_and_media_as_separate_processes(make_switchboard, app, account, tmp_path):
    """`switchboard control` waits for a media plane; `switchboard media` attaches to it.
    A call works; when that media process goes, another one attaches and calls work again."""
    import subprocess
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))]),
        name="control plane", mode="control")
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    for round_ in ("first", "second"):
        with open(tmp_path / f"media-{round_}.log", "wb") as log:
            media = subprocess.Popen([str(sb.binary), "media", "--config", str(sb.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        try:
            time.sleep(1.0)
            assert media.poll() is None, (tmp_path / f"media-{round_}.log").read_text()
            app.reset()
            app.twiml("/voice", GATHER_TWO_DIGITS)
            app.twiml("/digits", SAY_OK_HANG_UP)
            outcome = place_call(sb, tmp_path / round_, MAIN, scenario="uac_gather_dtmf.xml",
                                 capture_audio=True)
            assert outcome.sipp.returncode == 0, outcome.sipp.explain()
            assert app.wait_for("/digits", timeout=1).param("Digits") == "12"
            assert_g711_speech(outcome.audio, what=f"prompt via the {round_} media process")
        finally:
            media.terminate()
            media.wait(timeout=10)
        assert sb.alive(), "the control plane must outlive its media process"
