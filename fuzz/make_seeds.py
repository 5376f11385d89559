#!/usr/bin/env python3
"""Writes the hand-made seed corpus: fuzz/corpus/<target>/seed-*. Run: python3 fuzz/make_seeds.py"""
import os, struct
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
def w(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, "seed-" + name), "wb").write(data)

def crlf(s): return s.replace("\n", "\r\n")

SDP = crlf("""v=0
o=sipp 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
def invite(branch="z9hG4bK-1-0", cid="1-4242@127.0.0.1", body=SDP, extra=""):
    return crlf(f"""INVITE sip:15005550006@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport
From: "SIPp caller" <sip:+15551230001@127.0.0.1:5070>;tag=4242SIPpTag001
To: <sip:15005550006@127.0.0.1:5060>
Call-ID: {cid}
CSeq: 1 INVITE
Contact: <sip:+15551230001@127.0.0.1:5070;transport=UDP>
Max-Forwards: 70
User-Agent: SIPp switchboard-e2e
{extra}Content-Type: application/sdp
Content-Length: {len(body)}

""") + body
def inreq(method, cseq, branch, to_tag="$TAG", cid="1-4242@127.0.0.1", uri="sip:15005550006@203.0.113.5:5060"):
    return crlf(f"""{method} {uri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport
From: "SIPp caller" <sip:+15551230001@127.0.0.1:5070>;tag=4242SIPpTag001
To: <sip:15005550006@127.0.0.1:5060>;tag={to_tag}
Call-ID: {cid}
CSeq: {cseq} {method}
Max-Forwards: 70
Content-Length: 0

""")
w("sip_message", "invite-sdp", invite())
w("sip_message", "ack", inreq("ACK", 1, "z9hG4bK-1-5", to_tag="8f3a2c1d0e9b7a65"))
w("sip_message", "bye", inreq("BYE", 2, "z9hG4bK-1-7", to_tag="8f3a2c1d0e9b7a65"))
w("sip_message", "cancel", inreq("CANCEL", 1, "z9hG4bK-1-0", to_tag="").replace("To: <sip:15005550006@127.0.0.1:5060>;tag=\r\n", "To: <sip:15005550006@127.0.0.1:5060>\r\n"))
w("sip_message", "response-200", crlf("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKdeadbeef;received=192.0.2.1;rport=5062
Via: SIP/2.0/UDP [2001:db8::1]:5080;branch=z9hG4bK2
Record-Route: <sip:proxy.example.com;lr>, <sip:[2001:db8::9]:5060;lr>
From: <sip:switchboard@203.0.113.5>;tag=0011223344556677
To: "Bob \\"B\\"" <sip:bob@example.com>;tag=99
Call-ID: abc@203.0.113.5
CSeq: 2 BYE
Content-Length: 0

"""))
w("sip_message", "register-compact-folded", crlf("""REGISTER sips:registrar.example.com;transport=tls SIP/2.0
v: SIP/2.0/TLS client.example.com:5061;branch=z9hG4bK74b43
Max-Forwards: 70
f: Alice <sip:alice:secret@example.com>;tag=456248
t: Alice <sip:alice@example.com>
i: 843817637684230@998sdasdh09
CSeq: 1826 REGISTER
m: <sips:alice@client.example.com?Subject=x>;expires=7200, *
Supported: timer,
 100rel
l: 0

"""))
w("sip_message", "options-tel-lf", "OPTIONS tel:+1-201-555-0123;phone-context=example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nFrom: sip:a@h;tag=1\nTo: sip:b@h\nCall-ID: x\nCSeq: 7 OPTIONS\nAccept: application/sdp\n\n")

# endpoint scripts: steps separated by NUL, first byte = op
def script(*steps): return b"\0".join(s.encode() if isinstance(s, str) else s for s in steps)
def t(ms): return b"T" + struct.pack("<H", ms // 10)
ANSWER = crlf("v=0\no=switchboard 7 7 IN IP4 203.0.113.5\ns=switchboard\nc=IN IP4 203.0.113.5\nt=0 0\nm=audio 40000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=ptime:20\na=sendrecv\n")
w("sip_endpoint", "call-answer-bye", script("D" + invite(), "R", "A" + ANSWER, "D" + inreq("ACK", 1, "z9hG4bK-1-5"), t(3000), "D" + inreq("BYE", 2, "z9hG4bK-1-7"), t(40000)))
w("sip_endpoint", "call-cancel", script("D" + invite(), "R", t(200), "D" + inreq("CANCEL", 1, "z9hG4bK-1-0", to_tag="").replace("To: <sip:15005550006@127.0.0.1:5060>;tag=\r\n", "To: <sip:15005550006@127.0.0.1:5060>\r\n"), "D" + inreq("ACK", 1, "z9hG4bK-1-0"), t(40000)))
w("sip_endpoint", "call-reject-486", script("D" + invite(), b"J" + struct.pack("<H", 486), t(600), "D" + invite(), "D" + inreq("ACK", 1, "z9hG4bK-1-0"), t(40000)))
w("sip_endpoint", "answer-no-ack-hangup", script("D" + invite(), "A" + ANSWER, "H", t(500), t(1000), t(4000), t(40000)))
w("sip_endpoint", "local-hangup", script("D" + invite(), "A", "D" + inreq("ACK", 1, "z9hG4bK-1-5"), "H", t(500), b"D" + crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=$BRANCH\nFrom: <sip:15005550006@127.0.0.1:5060>;tag=$TAG\nTo: <sip:+15551230001@127.0.0.1:5070>;tag=4242SIPpTag001\nCall-ID: 1-4242@127.0.0.1\nCSeq: 1 BYE\nContent-Length: 0\n\n").encode()))
w("sip_endpoint", "malformed-and-options", script("D" + invite().replace("Content-Length: ", "Content-Length: 9"), "d" + invite(branch="z9hG4bKv6").replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1), "D" + inreq("OPTIONS", 5, "z9hG4bKopt"), "D" + inreq("OPTIONS", 5, "z9hG4bKopt"), t(33000)))

def reinvite():
    return invite(branch="z9hG4bK-1-9").replace("To: <sip:15005550006@127.0.0.1:5060>\r\n", "To: <sip:15005550006@127.0.0.1:5060>;tag=$TAG\r\n").replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
w("sip_endpoint", "reinvite-and-other-methods", script("D" + invite(), "A" + ANSWER, "D" + inreq("ACK", 1, "z9hG4bK-1-5"), "D" + reinvite(), "D" + reinvite(), "D" + inreq("ACK", 2, "z9hG4bK-1-10"), "D" + inreq("REGISTER", 3, "z9hG4bK-1-11"), "D" + inreq("FOO", 4, "z9hG4bK-1-12"), "D" + inreq("INFO", 5, "z9hG4bK-1-13"), t(1000), "H", t(40000)))
w("sip_endpoint", "many-calls", script(*["D" + invite(branch=f"z9hG4bK-{n}-0", cid=f"{n}-4242@127.0.0.1") for n in range(6)], t(100), b"J" + struct.pack("<H", 480), b"R\x01", "A", t(40000)))

# outbound calls (op O); responses use $BRANCH/$CALLID/$FTAG of the last request sent
def far_response(status, cseq="1 INVITE", to_tag="far1", extra="", body=""):
    return crlf(f"""SIP/2.0 {status}
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=$BRANCH
From: "Fuzz" <sip:+15005550006@203.0.113.5>;tag=$FTAG
To: <sip:+15551230000@192.0.2.10>{';tag=' + to_tag if to_tag else ''}
Call-ID: $CALLID
CSeq: {cseq}
Contact: <sip:gw@192.0.2.10:5060>
{extra}Content-Length: {len(body)}

""") + body
def far_bye():
    return crlf("""BYE sip:+15005550006@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKfarbye1
From: <sip:+15551230000@192.0.2.10>;tag=far1
To: "Fuzz" <sip:+15005550006@203.0.113.5>;tag=$FTAG
Call-ID: $CALLID
CSeq: 2 BYE
Content-Length: 0

""")
OFFER = crlf("v=0\no=switchboard 9 9 IN IP4 203.0.113.5\ns=switchboard\nc=IN IP4 203.0.113.5\nt=0 0\nm=audio 40002 RTP/AVP 0 8 101\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n")
w("sip_endpoint", "outbound-answered-remote-bye", script("O" + OFFER, "D" + far_response("100 Trying", to_tag=""), "D" + far_response("180 Ringing"), "D" + far_response("183 Session Progress", extra="Content-Type: application/sdp\r\n", body=SDP), "D" + far_response("200 OK", extra="Content-Type: application/sdp\r\n", body=SDP), "D" + far_response("200 OK", extra="Content-Type: application/sdp\r\n", body=SDP), t(2000), "D" + far_bye(), t(40000)))
w("sip_endpoint", "outbound-digest-then-hangup", script("O" + OFFER, "D" + far_response("407 Proxy Authentication Required", extra='Proxy-Authenticate: Digest realm="trunk.example", nonce="dcd98b7102dd2f0e", algorithm=SHA-256, qop="auth"\r\n'), "D" + far_response("401 Unauthorized", extra='WWW-Authenticate: Digest realm="trunk.example", nonce="x2", opaque="5ccc", algorithm=MD5\r\n'), "D" + far_response("200 OK"), "H", t(500), "D" + far_response("200 OK", cseq="2 BYE"), t(40000)))
w("sip_endpoint", "outbound-cancel-and-timeout", script("O", "C", "D" + far_response("180 Ringing"), "D" + far_response("200 OK", cseq="1 CANCEL"), "D" + far_response("487 Request Terminated"), "O", t(40000), "O", "D" + far_response("486 Busy Here"), t(40000)))

# SDP
w("sdp_parse", "sipp-offer", SDP)
w("sdp_parse", "answer", ANSWER)
w("sdp_parse", "multi-stream-ipv6", "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nt=0 0\na=recvonly\nm=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 0 RTP/AVP 0\nm=audio 7000/2 RTP/AVPF 18 96 97\nc=IN IP6 2001:db8::2/64\na=rtpmap:96 pcma/8000/1\na=rtpmap:97 telephone-event/8000\na=fmtp:97 0-16\na=ptime:30.4\nm=application 9 UDP/BFCP *\n")
w("sdp_parse", "session-ptime-dynamic", crlf("v=0\no=x 2 3 IN IP4 192.0.2.1\ns= \nc=IN IP4 224.2.1.1/127/3\nt=0 0\na=ptime:90\na=sendonly\nm=audio 49170 RTP/AVP 8 0\n"))

# TwiML
w("twiml_voice", "gather", """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather input="dtmf speech" numDigits="4" timeout="5" finishOnKey="#" action="/gather/done?Digits={Digits}" method="POST">
    <Say voice="alice" language="en-GB" loop="2">Please enter your <emphasis>PIN</emphasis>.<break time="1s"/></Say>
    <Play loop="1">https://media.example.com/beep.wav</Play>
    <Pause length="2"/>
  </Gather>
  <Say>We did not receive any input. Goodbye &amp; thanks!</Say>
  <Redirect method="GET">../start</Redirect>
</Response>
""")
w("twiml_voice", "dial-record", """<Response><Dial callerId="+15551230001" timeout="20" record="record-from-answer" action="https://app.example.com/dial-status" answerOnBridge="true"><Number sendDigits="ww1234">+15005550006</Number><Sip>sip:bob@example.com</Sip><Client>alice</Client><Conference beep="onEnter" startConferenceOnEnter="true">Room 1</Conference><Queue url="/q">support</Queue></Dial><Record maxLength="30" playBeep="false" trim="trim-silence" recordingStatusCallback="/rec"/><Enqueue waitUrl="/wait">support</Enqueue><Leave/><Reject reason="busy"/><Hangup/></Response>""")
w("twiml_voice", "message-cdata", """<Response><Message to="+15551230001" action="/sms"><Body><![CDATA[Hi <there> & bye]]></Body><Media>https://x.example/a.png</Media></Message><Sms>legacy &#x263A;</Sms><Pause/></Response>""")
w("twiml_voice", "urls-template", "https://app.example.com/voice/start?From=%2B1555\n../gather/action?Digits={Digits}&x={ From}&{{From}}&{Missing\n")

# shmq records: kind u32, flags u32, session u64, body[80]
def rec(kind, session, body): return struct.pack("<IIQ", kind, 0, session) + body.ljust(80, b"\0")
w("shmq_records", "open-v4", rec(1, 42, bytes([127,0,0,1]) + bytes(12) + struct.pack("<IIHHBBBB", 0, 0, 6000, 20, 4, 0, 1, 101)))
w("shmq_records", "open-v6", rec(1, 43, bytes(range(16)) + struct.pack("<IIHHBBBB", 7, 2, 7000, 30, 6, 8, 0, 0)))
w("shmq_records", "play", rec(2, 44, bytes(range(32)) + struct.pack("<IH", 9, 3)))
w("shmq_records", "silence", rec(3, 45, struct.pack("<II", 10, 1500)))
w("shmq_records", "stop-close", rec(4, 46, b""))
w("shmq_records", "session-opened", rec(101, 47, struct.pack("<H", 40000)))
for reason in range(0, 8):
    w("shmq_records", f"session-failed-{reason}", rec(102, 48, struct.pack("<I", reason)))
w("shmq_records", "play-done", rec(103, 49, struct.pack("<IB", 9, 1)))
w("shmq_records", "play-failed", rec(104, 50, struct.pack("<II", 9, 2)))
w("shmq_records", "dtmf", rec(105, 51, b"#"))
w("shmq_records", "session-closed", rec(106, 52, struct.pack("<QQ", 1000, 998)))

# RTP: each datagram preceded by a length byte (bit 7: from another address)
def rtp(pt, seq, ts, payload, marker=0, ssrc=0x1234, first=0x80):
    return struct.pack(">BBHII", first, (marker << 7) | pt, seq, ts, ssrc) + payload
def framed(*dgrams): return b"".join(bytes([len(d) & 0x7F]) + d for d in dgrams)
def ev(e, end, dur): return struct.pack(">BBH", e, (0x80 if end else 0) | 10, dur)
w("rtp", "pcmu-and-dtmf", framed(
    rtp(0, 1, 160, b"\xff" * 40),
    rtp(101, 2, 320, ev(1, False, 160), marker=1),
    rtp(101, 3, 320, ev(1, False, 320)),
    rtp(101, 4, 320, ev(1, True, 800)),
    rtp(101, 5, 320, ev(1, True, 800)),
    rtp(101, 6, 1280, ev(11, True, 800), marker=1),
))
w("rtp", "csrc-ext-padding", framed(
    rtp(8, 9, 0, struct.pack(">II", 5, 6) + struct.pack(">HH", 0xBEDE, 1) + b"\x10abc" + b"payload" + b"\0\0\x03", first=0x80 | 0x20 | 0x10 | 2),
    struct.pack(">BBHI", 0x81, 200, 6, 1) + bytes(20),
    bytes([0x80 | 0x80]) ,
))
# Regression inputs for bugs the fuzzers found (see docs/fuzzing.md).
w("sdp_parse", "regress-payload-type-200", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5000 RTP/AVP 200 201\r\na=rtpmap:200 PCMU/8000\r\na=rtpmap:201 telephone-event/8000\r\n")
w("sip_message", "regress-via-unterminated-quote", crlf("""BYE sip:15005550006@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-7;rpoler" <sip.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-7;r
From: "SIPp caller" <sip:+15551230001@127.0.0.1:5070>;tag=4242SIPpTag001
To: <sip:15005550006@127.0.0.1:5060>;tag=8f3a2c1d0e9b7a65
Call-ID: 1-4242@127.0.0.1
CSeq: 2 BYE
Content-Length: 0

"""))
