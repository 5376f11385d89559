#!/usr/bin/env bash
# REST API throughput: authenticated GET …/Calls/{Sid}.json and POST …/Calls.json (to a
# trunk whose far end, SIPp, answers every INVITE 486 Busy, so no media), with wrk.
#
#   cargo build --release -p switchboard && bash bench/api_throughput.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}
conns=${2:-32}
for tool in wrk sipp curl; do command -v $tool >/dev/null || { echo "need $tool" >&2; exit 1; }; done
work=$(mktemp -d /tmp/sb-api-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
sid=AC$(printf 'd%.0s' {1..32}); token=$(printf 'e%.0s' {1..32})
free() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="u" else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
sip=$(free u); http=$(free t); admin=$(free t); far=$(free u)
cat > "$work/sb.toml" <<TOML
[sip]
listen = "127.0.0.1:$sip"
[http]
listen = "127.0.0.1:$http"
requests_per_second = 0
[admin]
listen = "127.0.0.1:$admin"
password = "bench"
[media]
rtp_ports = "40000-44999"
cores = [1]
[storage]
data_dir = "$work/var"
[[accounts]]
sid = "$sid"
auth_token = "$token"
[[numbers]]
account = "$sid"
number = "+15005550006"
voice_url = "http://127.0.0.1:$http/demo/hello"
[[trunks]]
name = "busy"
gateway = "127.0.0.1:$far"
prefixes = ["1"]
TOML
sipp -sf tests/peers/uas_reply_486.xml -i 127.0.0.1 -p "$far" -m 100000000 -nostdin -bg >/dev/null 2>&1 || true
RUST_LOG=warn target/release/switchboard run --config "$work/sb.toml" 2>"$work/sb.log" &
base="http://127.0.0.1:$http/2010-04-01/Accounts/$sid"
for _ in $(seq 100); do curl -sf -u "$sid:$token" "$base/Calls.json" >/dev/null && break; sleep 0.2; done
call=$(curl -sf -u "$sid:$token" -X POST "$base/Calls.json" \
  --data-urlencode To=+15551230000 --data-urlencode From=+15005550006 \
  --data-urlencode "Twiml=<Response><Hangup/></Response>" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sid"])')
auth="Authorization: Basic $(printf '%s:%s' "$sid" "$token" | base64 -w0)"
echo "== GET $base/Calls/$call.json ($secs s, $conns connections)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$auth" "$base/Calls/$call.json" | grep -E "Requests/sec|99%|50%|Non-2xx"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "To=%2B15551230000&From=%2B15005550006&Twiml=%3CResponse%3E%3CHangup%2F%3E%3C%2FResponse%3E"
LUA
echo "== POST $base/Calls.json ($secs s, $conns connections; each call dials the busy trunk)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$auth" -s "$work/post.lua" "$base/Calls.json" | grep -E "Requests/sec|99%|50%|Non-2xx"
pkill -f "uas_reply_486.xml -i 127.0.0.1 -p $far" || true
