"""The shared Switchboard instance's numbers and the canned TwiML the tests use."""

MAIN = "+15005550006"          # account A; voice /voice, status callback /status
FALLBACK = "+15005550007"      # account A; voice on a refusing port, fallback /fallback
APP_DOWN = "+15005550008"      # account A; voice on a refusing port, no fallback
APP_HTTP_500 = "+15005550009"  # account A; voice /http500
APP_BAD_XML = "+15005550010"   # account A; voice /badxml
OTHER_TENANT = "+15005550020"  # account B; voice /b/voice
UNKNOWN = "+15009999999"       # configured nowhere

GATHER_TWO_DIGITS = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather numDigits="2" action="/digits"><Say>Please enter two digits</Say></Gather>'
    '</Response>')
SAY_OK_HANG_UP = "<Response><Say>ok</Say><Hangup/></Response>"
SAY_HELLO_HANG_UP = "<Response><Say>Hello from the test application.</Say><Hangup/></Response>"
