"""`<Dial><Conference>`: three SIPp callers join one room, each streaming its own tone; each
hears the other two and not itself (the media plane's mix, through real RTP). Muting one
through the REST API (the official twilio SDK) takes its tone out of what the others hear;
ending the conference through the API sends everyone on to the verb after `<Dial>`. The
conference's status callbacks are signed and report join/start/mute/leave/end in order; the
Conference and Participants resources show the room, live and afterwards. A lone caller
waits (hold music) until a second joins, here an agent dialled in by Create Participant;
another account cannot see the room; removing the last participant ends it."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from sbtest import ports
from sbtest.rtp import RtpCapture, RtpPacket, decode_g711, linear_to_ulaw, tone_power
from sbtest.sipp import SippCall
from sbtest.standard import MAIN

TONES = [500.0, 900.0, 1400.0]  # Hz, one per caller


def _write_tone(path: Path, freq: float, seconds: float = 4.0) -> None:
    """A pure tone as raw mu-law (a whole number of periods per 20 ms frame, so the looped
    file has no click)."""
    n = int(8000 * seconds)
    samples = [int(6000 * math.sin(2 * math.pi * freq * i / 8000)) for i in range(n)]
    path.write_bytes(bytes(linear_to_ulaw(s) for s in samples))


class _Caller:
    """One SIPp caller streaming a tone into the room, its received RTP captured."""

    def __init__(self, sb, workdir: Path, freq: float) -> None:
        sipp_dir = workdir / "sipp"
        sipp_dir.mkdir(parents=True, exist_ok=True)
        _write_tone(sipp_dir / "caller.ul", freq)
        self.media_port = ports.free_media_port()
        self.capture = RtpCapture(workdir, self.media_port).start()
        self.call = SippCall("uac_pcmu_stream_wait_bye.xml", sipp_dir, target=sb.sip_target,
                             service=MAIN.lstrip("+"), media_port=self.media_port,
                             timeout_s=60)
        self.result = None
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        self.result = self.call.wait()

    def finish(self, timeout: float = 45.0):
        self.thread.join(timeout)
        self.call.kill()
        self.capture.stop()
        return self.result

    def packets(self) -> list[RtpPacket]:
        return [p for p in self.capture.packets() if p.payload_type in (0, 8)]


def _window(packets: list[RtpPacket], start: float, end: float) -> list[int]:
    samples: list[int] = []
    for p in sorted(packets, key=lambda p: p.time):
        if start <= p.time < end:
            samples.extend(decode_g711(p.payload, p.payload_type))
    return samples


def _powers(samples: list[int]) -> list[float]:
    return [tone_power(samples, f) for f in TONES]


def _participants(client, conference_sid: str) -> list:
    return client.conferences(conference_sid).participants.list()


def _wait_participants(client, conference_sid: str, count: int, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        found = _participants(client, conference_sid)
        if len(found) == count or time.monotonic() > deadline:
            assert len(found) == count, f"{len(found)} participants, expected {count}"
            return found
        time.sleep(0.2)


def test_three_callers_each_hear_the_other_two_mute_and_end(switchboard, app, account,
                                                            tmp_path):
    sb = switchboard
    app.twiml("/voice", '<Response><Dial><Conference beep="false" waitUrl="" '
                        'statusCallback="/conf-events" '
                        'statusCallbackEvent="start end join leave mute">'
                        'standup</Conference></Dial><Hangup/></Response>')
    app.default("/conf-events", "", content_type="text/plain")
    client = sb.client(account)
    callers: list[_Caller] = []
    try:
        # One after another, so the participants' order is the callers' order.
        conference = None
        for i, freq in enumerate(TONES):
            callers.append(_Caller(sb, tmp_path / f"caller{i}", freq))
            app.wait_for("/conf-events", count=i + 1 + (1 if i >= 1 else 0), timeout=20)
            if conference is None:
                rooms = client.conferences.list(friendly_name="standup")
                assert len(rooms) == 1, rooms
                conference = rooms[0]
            _wait_participants(client, conference.sid, i + 1)
        conference = client.conferences(conference.sid).fetch()
        assert conference.sid.startswith("CF") and conference.status == "in-progress"
        participants = _wait_participants(client, conference.sid, 3)
        assert all(not p.muted and not p.hold for p in participants)
        call_sids = [p.call_sid for p in participants]

        # All three live and talking for a while.
        time.sleep(3.0)
        both_live = time.time()
        # Mute the first caller (it joined first and streams TONES[0]).
        first = participants[0]
        muted = client.conferences(conference.sid).participants(first.call_sid).update(muted=True)
        assert muted.muted is True
        muted_at = time.time()
        time.sleep(3.0)
        ended_at = time.time()
        done = client.conferences(conference.sid).update(status="completed")
        assert done.status == "completed", done.status
    finally:
        results = [c.finish() for c in callers]
    for caller, result in zip(callers, results):
        assert result is not None and result.returncode == 0, \
            result.explain() if result else "SIPp did not finish"

    # Every caller hears exactly the two tones it does not send.
    for index, caller in enumerate(callers):
        packets = caller.packets()
        assert packets, f"caller {index} received no RTP"
        live = _window(packets, both_live - 2.5, both_live - 0.5)
        assert len(live) >= 8000, f"caller {index}: {len(live)} samples while all were live"
        powers = _powers(live)
        own = powers[index]
        others = [p for i, p in enumerate(powers) if i != index]
        assert min(others) > 50 * max(own, 1.0), \
            f"caller {index} ({TONES[index]} Hz) heard powers {powers}"

    # After the mute nobody hears the first caller's tone; the others still hear each other.
    for index in (1, 2):
        after = _window(callers[index].packets(), muted_at + 0.7, ended_at - 0.2)
        powers = _powers(after)
        other = 2 if index == 1 else 1
        assert powers[other] > 50 * max(powers[0], 1.0), \
            f"caller {index} still hears the muted tone: {powers}"

    # The callbacks: signed, in order, with Twilio's parameters.
    events = app.requests("/conf-events")
    for event in events:
        assert event.signature_valid(account.auth_token), event.describe()
        assert event.param("ConferenceSid") == conference.sid
        assert event.param("FriendlyName") == "standup"
        assert event.param("AccountSid") == account.sid
    events.sort(key=lambda e: int(e.param("SequenceNumber")))
    assert [int(e.param("SequenceNumber")) for e in events] == list(range(len(events)))
    names = [e.param("StatusCallbackEvent") for e in events]
    assert names == ["participant-join", "participant-join", "conference-start",
                     "participant-join", "participant-mute", "participant-leave",
                     "participant-leave", "participant-leave", "conference-end"], names
    mute = events[names.index("participant-mute")]
    assert mute.param("CallSid") == first.call_sid and mute.param("Muted") == "true"
    end = events[-1]
    assert end.param("ReasonConferenceEnded") == "conference-ended-via-api", end.describe()

    # Afterwards: the room is completed and has no participants; the calls went on to
    # <Hangup/> and completed.
    stored = client.conferences(conference.sid).fetch()
    assert stored.status == "completed"
    assert _participants(client, conference.sid) == []
    for sid in call_sids:
        assert client.calls(sid).fetch().status == "completed"


def test_a_lone_caller_waits_and_other_accounts_cannot_see_the_room(
        switchboard, app, accounts, tmp_path):
    account, other_account = accounts
    sb = switchboard
    app.twiml("/voice", '<Response><Dial><Conference>solo</Conference></Dial></Response>')
    client = sb.client(account)
    caller = _Caller(sb, tmp_path / "solo", TONES[0])
    try:
        deadline = time.monotonic() + 15
        rooms = []
        while not rooms and time.monotonic() < deadline:
            rooms = client.conferences.list(friendly_name="solo")
            time.sleep(0.2)
        assert len(rooms) == 1
        room = rooms[0]
        assert room.status == "init", "one caller does not start a conference"
        [participant] = _wait_participants(client, room.sid, 1)
        time.sleep(2.0)
        heard = _window(caller.packets(), time.time() - 1.5, time.time())
        assert heard and max(abs(s) for s in heard) > 500, "the lone caller hears hold music"

        # Another account sees neither the room nor its participant.
        other = sb.client(other_account)
        assert other.conferences.list(friendly_name="solo") == []
        try:
            other.conferences(room.sid).fetch()
            raise AssertionError("another account fetched the conference")
        except Exception as e:  # twilio.base.exceptions.TwilioRestException
            assert getattr(e, "status", None) == 404, e
        try:
            other.conferences(room.sid).participants(participant.call_sid).fetch()
            raise AssertionError("another account fetched the participant")
        except Exception as e:
            assert getattr(e, "status", None) == 404, e

        # Create Participant dials an agent into the room (by SIP URI): the room starts.
        callee_port = ports.free_port()
        callee = SippCall("uas_answer_hold_bye.xml", tmp_path / "agent", local_port=callee_port,
                          timeout_s=30)
        try:
            created = client.conferences(room.sid).participants.create(
                from_=MAIN, to=f"sip:agent@127.0.0.1:{callee_port}", label="agent",
                beep="false")
            assert created.call_sid.startswith("CA") and created.label == "agent"
            assert created.status == "queued"
            deadline = time.monotonic() + 15
            while client.conferences(room.sid).fetch().status != "in-progress":
                assert time.monotonic() < deadline, "the agent's answer did not start the room"
                time.sleep(0.2)
            agent = client.conferences(room.sid).participants("agent").fetch()
            assert agent.call_sid == created.call_sid
            agent_result = callee.wait()
        finally:
            callee.kill()
        assert agent_result.returncode == 0, agent_result.explain()
        # The agent hung up after 3 s: the started room goes on with the first caller.
        _wait_participants(client, room.sid, 1)
        assert client.conferences(room.sid).fetch().status == "in-progress"

        # Removing the participant sends its call on: the document ends, Twilio hangs up.
        client.conferences(room.sid).participants(participant.call_sid).delete()
    finally:
        result = caller.finish()
    assert result is not None and result.returncode == 0, \
        result.explain() if result else "SIPp did not finish"
    assert client.conferences(room.sid).fetch().status == "completed"
