"""Contract test: schemathesis drives every 2010-04-01 operation Switchboard
implements, generated from Twilio's own OpenAPI description, against a private
Switchboard, with the auth (`ignored_auth`) and use-after-delete
(`use_after_free`) checks on, and asserts that it finds nothing.

Twilio's spec is not ours to copy into this repository. It is read from
`$TWILIO_OAI_SPEC`, else from `../shared/reference/twilio-oai/` beside the
repository (present in CI), else from /work/shared/reference/twilio-oai/; when
none exists the test is skipped, saying so.

The spec is changed in memory only, each change explained where it is made:
the operations are filtered to the ones we implement, the relative `*_uri`
paging fields are declared `uri-reference`, the error answers Twilio gives (its
spec declares none) are added with Twilio's error body, and links (create ->
fetch/update/delete, delete -> fetch) are declared for the stateful phase.

Two runs against one Switchboard seeded with real records (finished calls, a
notification, numbers, keys): the records run (examples, coverage, fuzzing)
aims the item paths at those records; the stateful run follows the links from
records it creates itself, so that use-after-delete is checked. Bound the
effort with CONTRACT_MAX_EXAMPLES (default 25; about 45 s in all)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sbtest import ports
from sbtest.flows import new_call_sid, place_call, wait_call_status
from sbtest.server import Account, Number, SwitchboardConfig

REPO = Path(__file__).resolve().parents[2]
SPEC_NAME = "twilio_api_v2010.json"
SPEC_CANDIDATES = [
    REPO.parent / "shared" / "reference" / "twilio-oai" / SPEC_NAME,
    Path("/work/shared/reference/twilio-oai") / SPEC_NAME,
]

BASE = "/2010-04-01/Accounts"
ACCOUNT = BASE + "/{AccountSid}"

# (path, method) of every operation Switchboard implements.
IMPLEMENTED: dict[tuple[str, str], str] = {
    (BASE + ".json", "get"): "ListAccount",
    (BASE + ".json", "post"): "CreateAccount",
    (BASE + "/{Sid}.json", "get"): "FetchAccount",
    (BASE + "/{Sid}.json", "post"): "UpdateAccount",
    (ACCOUNT + "/Calls.json", "get"): "ListCall",
    (ACCOUNT + "/Calls.json", "post"): "CreateCall",
    (ACCOUNT + "/Calls/{Sid}.json", "get"): "FetchCall",
    (ACCOUNT + "/Calls/{Sid}.json", "post"): "UpdateCall",
    (ACCOUNT + "/Calls/{Sid}.json", "delete"): "DeleteCall",
    (ACCOUNT + "/Notifications.json", "get"): "ListNotification",
    (ACCOUNT + "/Notifications/{Sid}.json", "get"): "FetchNotification",
    (ACCOUNT + "/Calls/{CallSid}/Notifications.json", "get"): "ListCallNotification",
    (ACCOUNT + "/IncomingPhoneNumbers.json", "get"): "ListIncomingPhoneNumber",
    (ACCOUNT + "/IncomingPhoneNumbers.json", "post"): "CreateIncomingPhoneNumber",
    (ACCOUNT + "/IncomingPhoneNumbers/{Sid}.json", "get"): "FetchIncomingPhoneNumber",
    (ACCOUNT + "/IncomingPhoneNumbers/{Sid}.json", "post"): "UpdateIncomingPhoneNumber",
    (ACCOUNT + "/IncomingPhoneNumbers/{Sid}.json", "delete"): "DeleteIncomingPhoneNumber",
    (ACCOUNT + "/Keys.json", "get"): "ListKey",
    (ACCOUNT + "/Keys.json", "post"): "CreateNewKey",
    (ACCOUNT + "/Keys/{Sid}.json", "get"): "FetchKey",
    (ACCOUNT + "/Keys/{Sid}.json", "post"): "UpdateKey",
    (ACCOUNT + "/Keys/{Sid}.json", "delete"): "DeleteKey",
}
# Implemented once the server routes them (probed in the test, so this file works
# before and after they land).
CALL_NOTIFICATION_FETCH = {
    (ACCOUNT + "/Calls/{CallSid}/Notifications/{Sid}.json", "get"): "FetchCallNotification",
}
RECORDINGS = {
    (ACCOUNT + "/Recordings.json", "get"): "ListRecording",
    (ACCOUNT + "/Recordings/{Sid}.json", "get"): "FetchRecording",
    (ACCOUNT + "/Recordings/{Sid}.json", "delete"): "DeleteRecording",
    (ACCOUNT + "/Calls/{CallSid}/Recordings.json", "get"): "ListCallRecording",
}
CALLER_IDS = {
    (ACCOUNT + "/OutgoingCallerIds.json", "get"): "ListOutgoingCallerId",
    (ACCOUNT + "/OutgoingCallerIds.json", "post"): "CreateValidationRequest",
    (ACCOUNT + "/OutgoingCallerIds/{Sid}.json", "get"): "FetchOutgoingCallerId",
    (ACCOUNT + "/OutgoingCallerIds/{Sid}.json", "post"): "UpdateOutgoingCallerId",
    (ACCOUNT + "/OutgoingCallerIds/{Sid}.json", "delete"): "DeleteOutgoingCallerId",
}

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
]

# Twilio's error body (https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions).
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string", "format": "uri"},
        "status": {"type": "integer"},
    },
}

MAIN_NUMBER = "+15005550106"
APP_DOWN_NUMBER = "+15005550108"
SEED_NUMBER = "+15005550111"
SEED_NUMBER_2 = "+15005550112"
FREE_NUMBERS = [f"+150077{i:05d}" for i in range(0, 100_000, 397)]
DICTIONARY_FREE_NUMBERS = '{ dictionary = "free_numbers" }'  # TOML: a dictionary binding


def spec_path() -> Path | None:
    configured = os.environ.get("TWILIO_OAI_SPEC")
    if configured:
        return Path(configured)
    return next((p for p in SPEC_CANDIDATES if p.is_file()), None)


# Links for the stateful run (Twilio's spec declares none): a created record's SID leads to
# the operations on it, and a deleted record's SID to fetching it again (use-after-delete).
CREATED_LINKS = {
    "CreateAccount": {"Sid": ["FetchAccount", "UpdateAccount"]},
    "CreateCall": {"Sid": ["FetchCall", "UpdateCall", "DeleteCall"],
                   "CallSid": ["ListCallNotification"]},
    "CreateIncomingPhoneNumber": {"Sid": ["FetchIncomingPhoneNumber",
                                          "UpdateIncomingPhoneNumber",
                                          "DeleteIncomingPhoneNumber"]},
    "CreateNewKey": {"Sid": ["FetchKey", "UpdateKey", "DeleteKey"]},
}
DELETED_LINKS = {
    "DeleteCall": ["FetchCall", "UpdateCall", "DeleteCall"],
    "DeleteIncomingPhoneNumber": ["FetchIncomingPhoneNumber", "UpdateIncomingPhoneNumber",
                                  "DeleteIncomingPhoneNumber"],
    "DeleteKey": ["FetchKey", "UpdateKey", "DeleteKey"],
}


def add_links(operations: dict[str, dict]) -> None:
    """Adds CREATED_LINKS and DELETED_LINKS between the operations present."""
    def link(source: dict, status: str, target: str, parameters: dict[str, str]) -> None:
        if target not in operations:
            return
        if "AccountSid" in json.dumps(operations[target].get("parameters", [])):
            parameters = {"AccountSid": "$request.path.AccountSid", **parameters}
        source["responses"][status].setdefault("links", {})[target] = {
            "operationId": target, "parameters": parameters}

    for source_id, by_parameter in CREATED_LINKS.items():
        if source_id in operations:
            for parameter, targets in by_parameter.items():
                for target in targets:
                    link(operations[source_id], "201", target,
                         {parameter: "$response.body#/sid"})
    for source_id, targets in DELETED_LINKS.items():
        if source_id in operations:
            for target in targets:
                link(operations[source_id], "204", target, {"Sid": "$request.path.Sid"})


def error_statuses(operation_id: str) -> list[int]:
    """The error answers Twilio documents for an operation (its spec lists none)."""
    statuses = [401, 404]  # bad credentials; another account's or an unknown resource
    if operation_id.startswith(("Create", "Update", "List")):
        statuses.append(400)  # malformed parameters (Twilio's 2xxxx codes)
    if operation_id in {"CreateAccount", "UpdateAccount", "UpdateIncomingPhoneNumber"}:
        statuses.append(403)  # a subaccount managing accounts; transfers by non-owners
    if operation_id == "DeleteCall":
        statuses.append(409)  # the call is not over yet (Twilio's 20009)
    return sorted(statuses)


def contract_spec(raw: dict, implemented: dict[tuple[str, str], str]) -> dict:
    """The spec reduced to `implemented` and patched as the module doc says."""
    spec = copy.deepcopy(raw)
    paths = {}
    for path, item in spec["paths"].items():
        kept = {method: op for method, op in item.items()
                if (path, method) in implemented}
        if not kept:
            continue
        for method, op in kept.items():
            assert op.get("operationId") == implemented[(path, method)], (path, method)
            for status in error_statuses(op["operationId"]):
                op["responses"].setdefault(str(status), {
                    "description": "Twilio's error body",
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                })
        for key in ("servers", "description", "x-twilio", "parameters"):
            if key in item:
                kept[key] = item[key]
        paths[path] = kept
    missing = set(implemented) - {(p, m) for p, item in paths.items() for m in item}
    assert not missing, f"operations missing from the spec: {sorted(missing)}"
    spec["paths"] = paths
    add_links({op["operationId"]: op for item in paths.values()
               for method, op in item.items() if (method in ("get", "post", "delete"))})
    spec["servers"] = []
    # Twilio's paging URIs are relative (`/2010-04-01/...`), as the SDKs expect; the spec
    # says `format: uri` for them (and for the other `*_uri` fields).
    _relax_uri_fields(spec)
    return spec


def _relax_uri_fields(node) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if (key.endswith("_uri") or key == "uri") and isinstance(value, dict) \
                    and value.get("format") == "uri":
                value["format"] = "uri-reference"
            _relax_uri_fields(value)
    elif isinstance(node, list):
        for value in node:
            _relax_uri_fields(value)


def _toml(value) -> str:
    return json.dumps(value)  # JSON strings, numbers and arrays of them are TOML


def schemathesis_config(account: Account, operation_ids: set[str], seeds: dict[str, str], *,
                        stateful: bool, max_examples: int) -> str:
    """schemathesis.toml for one of the two runs.

    The records run (`stateful=False`: examples, coverage, fuzzing) points the item paths
    at real records (`seeds`), since random SIDs only ever reach the 404 answer. The
    stateful run leaves item SIDs to the links (create -> fetch/update/delete -> fetch), so
    that use-after-delete is checked on the records the run itself created and deleted."""
    lines = [
        "workers = 1",
        "seed = 20100401",
        "max-failures = 50",
        # Under Switchboard's default per-account limit (200/s, burst 400): a 429 is a
        # failure here, not noise.
        'rate-limit = "100/s"',
        "",
        "[auth.basic]",
        f"username = {_toml(account.sid)}",
        f"password = {_toml(account.auth_token)}",
        "",
        "[generation]",
        f"max-examples = {max_examples}",
        "",
        "[parameters]",
        # Every path is the test account's; anything else is a 404 and tests nothing.
        f'"path.AccountSid" = {_toml(account.sid)}',
        "",
        "[checks]",
        "enabled = false",
    ]
    for check in CHECKS:
        lines += [f"[checks.{check}]", "enabled = true"]
    lines += ["", "[phases.stateful]", f"enabled = {_toml(stateful)}", "max-steps = 8",
              "[phases.stateful.generation]", f"max-examples = {max_examples * 4}"]
    lines += ["", "[dictionaries.free_numbers]", f"values = {_toml(FREE_NUMBERS)}"]
    overrides: dict[str, dict[str, str]] = {
        # Numbers nobody owns (numbers are unique across accounts), so that creates can
        # succeed; a number already taken answers 400 (21422).
        "CreateIncomingPhoneNumber": {"body.PhoneNumber": DICTIONARY_FREE_NUMBERS},
        # A routable To, one of the account's numbers as From and an app URL, so that
        # calls can be created (the trunk's far end does not answer: they fail, and can
        # then be deleted).
        "CreateCall": {"body.To": "+15551230000", "body.From": seeds["from_number"],
                       "body.Url": seeds["url"]},
    }
    if not stateful:
        overrides.update({
            # The account resource is the authenticated account itself.
            "FetchAccount": {"path.Sid": account.sid},
            "UpdateAccount": {"path.Sid": account.sid},
            # Real records, so that their representations are checked too. Deletes get
            # records of their own (deleted by the first case; later cases see 404).
            "FetchCall": {"path.Sid": seeds["call"]},
            "UpdateCall": {"path.Sid": seeds["call"]},
            "DeleteCall": {"path.Sid": seeds["call_to_delete"]},
            "ListCallNotification": {"path.CallSid": seeds["call"]},
            "ListCallRecording": {"path.CallSid": seeds["call"]},
            "FetchNotification": {"path.Sid": seeds["notification"]},
            "FetchCallNotification": {"path.CallSid": seeds["call"],
                                      "path.Sid": seeds["notification"]},
            "FetchIncomingPhoneNumber": {"path.Sid": seeds["number"]},
            "UpdateIncomingPhoneNumber": {"path.Sid": seeds["number"]},
            "DeleteIncomingPhoneNumber": {"path.Sid": seeds["number_to_delete"]},
            "FetchKey": {"path.Sid": seeds["key"]},
            "UpdateKey": {"path.Sid": seeds["key"]},
            "DeleteKey": {"path.Sid": seeds["key_to_delete"]},
        })
    for operation_id, parameters in overrides.items():
        if operation_id not in operation_ids:
            continue
        lines += ["", "[[operations]]", f"include-operation-id = {_toml(operation_id)}",
                  "[operations.parameters]"]
        lines += [f"{_toml(k)} = {v if v == DICTIONARY_FREE_NUMBERS else _toml(v)}"
                  for k, v in parameters.items()]
    return "\n".join(lines) + "\n"


def run_schemathesis(name: str, spec_file: Path, config: str, base_url: str,
                     workdir: Path) -> tuple[int, str]:
    """Runs the schemathesis CLI; returns its exit status and output (also kept in
    `workdir/<name>.out`, with a JUnit report beside it)."""
    config_file = workdir / f"{name}.toml"
    config_file.write_text(config)
    command = [str(Path(sys.executable).with_name("schemathesis")),
               "--config-file", str(config_file), "--no-color", "run", str(spec_file),
               "--url", base_url, "--request-timeout", "10",
               "--report", "junit", "--report-dir", str(workdir / f"{name}-report")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    output = run.stdout + run.stderr
    (workdir / f"{name}.out").write_text(output)
    return run.returncode, output


def test_contract_against_twilio_openapi(make_switchboard, app, tmp_path):
    path = spec_path()
    if path is None or not path.is_file():
        where = [os.environ["TWILIO_OAI_SPEC"]] if os.environ.get("TWILIO_OAI_SPEC") \
            else [str(p) for p in SPEC_CANDIDATES]
        pytest.skip(f"SKIPPED: Twilio's OpenAPI spec ({SPEC_NAME}) was not found at "
                    f"{' or '.join(where)}; point TWILIO_OAI_SPEC at a copy of "
                    f"twilio/twilio-oai's spec/json/{SPEC_NAME} to run the contract test")
    raw = json.loads(path.read_text())

    account = Account.generate()
    refusing = ports.RefusingPort()
    try:
        down = f"http://127.0.0.1:{refusing.port}/voice"
        far_end = ports.free_port()  # nothing answers there: created calls fail
        sb = make_switchboard(SwitchboardConfig(
            accounts=[account],
            numbers=[Number(account, MAIN_NUMBER, app.url("/voice")),
                     Number(account, APP_DOWN_NUMBER, down)],
            trunks=[{"name": "nowhere", "gateway": f"127.0.0.1:{far_end}",
                     "prefixes": [""]}]))
        client = sb.client(account)

        # Finished calls, one with a notification (11205: the app cannot be reached).
        seeds = {"from_number": MAIN_NUMBER, "url": app.url("/voice")}
        for name in ("call_to_delete", "call"):
            before = {c.sid for c in client.calls.list()}
            outcome = place_call(sb, tmp_path / name, APP_DOWN_NUMBER)
            assert outcome.sipp.returncode == 0, outcome.sipp.explain()
            seeds[name] = new_call_sid(client, before)
            wait_call_status(client, seeds[name], {"completed"})
        notifications = client.calls(seeds["call"]).notifications.list()
        assert notifications, "the seeded call left no notification"
        seeds["notification"] = notifications[0].sid
        for name, number in (("number", SEED_NUMBER), ("number_to_delete", SEED_NUMBER_2)):
            seeds[name] = client.incoming_phone_numbers.create(
                phone_number=number, voice_url=app.url("/voice")).sid
        for name in ("key", "key_to_delete"):
            seeds[name] = client.new_keys.create(friendly_name=name).sid

        implemented = dict(IMPLEMENTED)
        auth = (account.sid, account.auth_token)
        # Operations landing in parallel: included once the server answers them.
        probe = (f"{BASE}/{account.sid}/Calls/{seeds['call']}/Notifications/"
                 f"{seeds['notification']}.json")
        if requests.get(sb.base_url + probe, auth=auth, timeout=10).status_code == 200:
            implemented.update(CALL_NOTIFICATION_FETCH)
        for resource, operations in (("OutgoingCallerIds", CALLER_IDS),
                                     ("Recordings", RECORDINGS)):
            probe = f"{BASE}/{account.sid}/{resource}.json"
            if requests.get(sb.base_url + probe, auth=auth, timeout=10).status_code == 200:
                implemented.update(operations)

        spec = contract_spec(raw, implemented)
        spec_file = tmp_path / "twilio_api_v2010.contract.json"
        spec_file.write_text(json.dumps(spec))
        max_examples = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "25"))
        failures = []
        for name, stateful in (("records", False), ("stateful", True)):
            config = schemathesis_config(account, set(implemented.values()), seeds,
                                         stateful=stateful, max_examples=max_examples)
            status, output = run_schemathesis(name, spec_file, config, sb.base_url, tmp_path)
            if status != 0 or "No test cases were generated" in output:
                failures.append(f"--- schemathesis, {name} run: exit {status} ---\n"
                                f"{output[-25000:]}")
            elif stateful:
                assert re.search(r"Scenarios:\s+[1-9]", output), output[-5000:]
        assert not failures, "\n".join(failures)
    finally:
        refusing.close()
