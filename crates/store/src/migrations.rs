//! Schema migrations, applied in order and tracked with SQLite's `user_version`.

use sqlx::{Row, SqlitePool};

/// Each entry moves the schema one version forward.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE accounts (
        sid TEXT PRIMARY KEY,
        auth_token TEXT NOT NULL,
        friendly_name TEXT NOT NULL,
        status TEXT NOT NULL,
        date_created INTEGER NOT NULL
     );
     CREATE TABLE phone_numbers (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL REFERENCES accounts(sid),
        phone_number TEXT NOT NULL,
        digits TEXT NOT NULL UNIQUE,
        voice_url TEXT,
        voice_method TEXT NOT NULL,
        voice_fallback_url TEXT,
        voice_fallback_method TEXT NOT NULL,
        status_callback TEXT,
        status_callback_method TEXT NOT NULL,
        date_created INTEGER NOT NULL
     );
     CREATE TABLE calls (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        parent_call_sid TEXT,
        from_addr TEXT NOT NULL,
        to_addr TEXT NOT NULL,
        from_formatted TEXT NOT NULL,
        to_formatted TEXT NOT NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        caller_name TEXT,
        forwarded_from TEXT,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL,
        start_time INTEGER,
        end_time INTEGER,
        duration INTEGER
     );
     CREATE INDEX calls_by_account ON calls(account_sid, date_created);
     CREATE TABLE notifications (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        call_sid TEXT,
        error_code TEXT NOT NULL,
        log_level INTEGER NOT NULL,
        message_text TEXT NOT NULL,
        more_info TEXT NOT NULL,
        request_method TEXT,
        request_url TEXT,
        request_variables TEXT,
        response_body TEXT,
        response_headers TEXT,
        date_created INTEGER NOT NULL
     );
     CREATE INDEX notifications_by_account ON notifications(account_sid, date_created);
     CREATE INDEX notifications_by_call ON notifications(call_sid);",
    // 2: the IncomingPhoneNumbers resource (names, messaging URLs, update time).
    "ALTER TABLE phone_numbers ADD COLUMN friendly_name TEXT;
     ALTER TABLE phone_numbers ADD COLUMN sms_url TEXT;
     ALTER TABLE phone_numbers ADD COLUMN sms_method TEXT NOT NULL DEFAULT 'POST';
     ALTER TABLE phone_numbers ADD COLUMN sms_fallback_url TEXT;
     ALTER TABLE phone_numbers ADD COLUMN sms_fallback_method TEXT NOT NULL DEFAULT 'POST';
     ALTER TABLE phone_numbers ADD COLUMN date_updated INTEGER;
     CREATE INDEX phone_numbers_by_account ON phone_numbers(account_sid, date_created);",
    // 3: subaccounts.
    "ALTER TABLE accounts ADD COLUMN parent_sid TEXT;
     ALTER TABLE accounts ADD COLUMN date_updated INTEGER;
     CREATE INDEX accounts_by_parent ON accounts(parent_sid);",
    // 4: API keys (the secret is kept only as a salted SHA-256 hash).
    "CREATE TABLE api_keys (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL REFERENCES accounts(sid),
        friendly_name TEXT NOT NULL,
        secret_salt TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL
     );
     CREATE INDEX api_keys_by_account ON api_keys(account_sid, date_created);",
    // 5: SIP trunks for outbound calls, and the number prefixes each one serves.
    "CREATE TABLE trunks (
        sid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        gateway TEXT NOT NULL,
        transport TEXT NOT NULL,
        username TEXT,
        password TEXT,
        caller_id TEXT,
        dial_prefix TEXT NOT NULL,
        strip_plus INTEGER NOT NULL,
        max_channels INTEGER NOT NULL,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL
     );
     CREATE TABLE trunk_prefixes (
        trunk_sid TEXT NOT NULL REFERENCES trunks(sid) ON DELETE CASCADE,
        prefix TEXT NOT NULL,
        PRIMARY KEY (trunk_sid, prefix)
     );
     CREATE INDEX trunk_prefixes_by_prefix ON trunk_prefixes(prefix);",
    // 6: outbound call requests accepted (201) but not yet placed; they survive restarts.
    "CREATE TABLE call_requests (
        call_sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        request TEXT NOT NULL,
        date_created INTEGER NOT NULL
     );",
    // 7: validated caller IDs (OutgoingCallerIds) and the validation calls that create them.
    "CREATE TABLE outgoing_caller_ids (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL REFERENCES accounts(sid),
        phone_number TEXT NOT NULL,
        digits TEXT NOT NULL,
        friendly_name TEXT NOT NULL,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL,
        UNIQUE (account_sid, digits)
     );
     CREATE INDEX outgoing_caller_ids_by_account ON outgoing_caller_ids(account_sid, date_created);
     CREATE TABLE caller_id_validations (
        id TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL REFERENCES accounts(sid),
        phone_number TEXT NOT NULL,
        friendly_name TEXT NOT NULL,
        validation_code TEXT NOT NULL,
        call_sid TEXT,
        status_callback TEXT,
        status_callback_method TEXT NOT NULL,
        status TEXT NOT NULL,
        date_created INTEGER NOT NULL
     );",
    // 8: call recordings, with the status callback each one reports to.
    "CREATE TABLE recordings (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        call_sid TEXT NOT NULL,
        status TEXT NOT NULL,
        channels INTEGER NOT NULL,
        source TEXT NOT NULL,
        duration_ms INTEGER,
        file_bytes INTEGER,
        error_code INTEGER,
        start_time INTEGER NOT NULL,
        status_callback TEXT,
        status_callback_method TEXT NOT NULL,
        status_callback_events TEXT NOT NULL,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL
     );
     CREATE INDEX recordings_by_account ON recordings(account_sid, date_created);
     CREATE INDEX recordings_by_call ON recordings(call_sid);",
    // 9: the unfinished calls, counted on every metrics scrape and at start-up.
    "CREATE INDEX calls_unfinished ON calls(status, direction)
        WHERE status IN ('queued', 'ringing', 'in-progress');",
    // 10: conference rooms.
    "CREATE TABLE conferences (
        sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        friendly_name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason_conference_ended TEXT,
        call_sid_ending_conference TEXT,
        date_created INTEGER NOT NULL,
        date_updated INTEGER NOT NULL
     );
     CREATE INDEX conferences_by_account ON conferences(account_sid, date_created);",
    // 11: media quality per call leg (RTCP statistics of its session), latest report.
    "CREATE TABLE call_qos (
        call_sid TEXT PRIMARY KEY,
        account_sid TEXT NOT NULL,
        codec INTEGER NOT NULL,
        packets_received INTEGER NOT NULL,
        packets_lost INTEGER NOT NULL,
        fraction_lost INTEGER NOT NULL,
        jitter_us INTEGER NOT NULL,
        jitter_max_us INTEGER NOT NULL,
        jitter_avg_us INTEGER NOT NULL,
        rtt_us INTEGER,
        rtt_max_us INTEGER,
        rtt_avg_us INTEGER,
        packets_sent INTEGER NOT NULL,
        octets_sent INTEGER NOT NULL,
        remote_fraction_lost INTEGER,
        remote_packets_lost INTEGER,
        remote_jitter_us INTEGER,
        remote_jitter_max_us INTEGER,
        remote_jitter_avg_us INTEGER,
        final_report INTEGER NOT NULL,
        date_updated INTEGER NOT NULL
     );",
];

pub(crate) async fn apply(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let version: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(*migration).execute(&mut *tx).await?;
        // PRAGMA does not take bind parameters; the value is our own constant.
        let pragma = format!("PRAGMA user_version = {}", index + 1);
        sqlx::raw_sql(sqlx::AssertSqlSafe(pragma))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
