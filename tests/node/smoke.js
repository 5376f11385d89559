// Smoke test with the official twilio Node SDK (base URL pointed at Switchboard):
// lists calls, creates / fetches / updates / deletes an incoming number, and checks a
// Twilio error comes back as a RestException with its code. Exits non-zero on failure.
// Env: SWITCHBOARD_URL, ACCOUNT_SID, AUTH_TOKEN, NUMBER (an E.164 number not yet taken).
'use strict';
const assert = require('node:assert/strict');
const twilio = require('twilio');

async function main() {
  const client = twilio(process.env.ACCOUNT_SID, process.env.AUTH_TOKEN);
  client.api.baseUrl = process.env.SWITCHBOARD_URL;
  const calls = await client.calls.list({ limit: 20 });
  assert.ok(Array.isArray(calls));
  const created = await client.incomingPhoneNumbers.create({
    phoneNumber: process.env.NUMBER,
    voiceUrl: 'http://127.0.0.1:9/voice',
    friendlyName: 'node smoke',
  });
  assert.match(created.sid, /^PN[0-9a-f]{32}$/);
  const fetched = await client.incomingPhoneNumbers(created.sid).fetch();
  assert.equal(fetched.friendlyName, 'node smoke');
  const updated = await client.incomingPhoneNumbers(created.sid).update({ voiceMethod: 'GET' });
  assert.equal(updated.voiceMethod, 'GET');
  assert.equal(await client.incomingPhoneNumbers(created.sid).remove(), true);
  await assert.rejects(client.incomingPhoneNumbers(created.sid).fetch(), (err) => {
    assert.equal(err.status, 404);
    assert.equal(err.code, 20404);
    return true;
  });
  console.log('node sdk smoke: ok');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
