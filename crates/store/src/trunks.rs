//! SIP trunks (operator-provisioned gateways for outbound calls) and the routing of a
//! dialled number to a trunk by the longest matching prefix of its digits.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::{number_digits, Store, StoreError};

/// An outbound SIP gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// `TK` + 32 hex digits.
    pub sid: String,
    /// Unique operator-chosen name, e.g. `carrier-a`.
    pub name: String,
    /// `host:port` of the gateway.
    pub gateway: String,
    /// `udp` (the only transport so far).
    pub transport: String,
    /// Digest credentials, when the gateway challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Caller-ID rule: when set, every call through the trunk presents this number.
    pub caller_id: Option<String>,
    /// Caller-ID/number rule: prepended to the dialled digits (e.g. a tech prefix).
    pub dial_prefix: String,
    /// Send the number without its leading `+`.
    pub strip_plus: bool,
    /// Concurrent calls the trunk carries at most.
    pub max_channels: u32,
    /// Digit prefixes of the numbers this trunk serves (`""` serves every number).
    pub prefixes: Vec<String>,
    pub date_created: i64,
    pub date_updated: i64,
}

impl Trunk {
    /// The user part to dial for an E.164 number under this trunk's rules.
    pub fn dial_user(&self, number: &str) -> String {
        let digits = number_digits(number);
        let plus = if self.strip_plus || !number.trim_start().starts_with('+') {
            ""
        } else {
            "+"
        };
        format!("{}{plus}{digits}", self.dial_prefix)
    }
}

impl Store {
    /// Creates the trunk or replaces the one with the same name (prefixes included).
    pub async fn upsert_trunk(&self, trunk: &Trunk) -> Result<Trunk, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO trunks (sid, name, gateway, transport, username, password, caller_id,
                dial_prefix, strip_plus, max_channels, date_created, date_updated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET gateway = excluded.gateway,
                transport = excluded.transport, username = excluded.username,
                password = excluded.password, caller_id = excluded.caller_id,
                dial_prefix = excluded.dial_prefix, strip_plus = excluded.strip_plus,
                max_channels = excluded.max_channels, date_updated = excluded.date_updated",
        )
        .bind(&trunk.sid)
        .bind(&trunk.name)
        .bind(&trunk.gateway)
        .bind(&trunk.transport)
        .bind(&trunk.username)
        .bind(&trunk.password)
        .bind(&trunk.caller_id)
        .bind(&trunk.dial_prefix)
        .bind(trunk.strip_plus)
        .bind(i64::from(trunk.max_channels))
        .bind(trunk.date_created)
        .bind(trunk.date_updated)
        .execute(&mut *tx)
        .await?;
        let sid: String = sqlx::query("SELECT sid FROM trunks WHERE name = ?")
            .bind(&trunk.name)
            .fetch_one(&mut *tx)
            .await?
            .try_get("sid")?;
        sqlx::query("DELETE FROM trunk_prefixes WHERE trunk_sid = ?")
            .bind(&sid)
            .execute(&mut *tx)
            .await?;
        for prefix in &trunk.prefixes {
            sqlx::query("INSERT OR IGNORE INTO trunk_prefixes (trunk_sid, prefix) VALUES (?, ?)")
                .bind(&sid)
                .bind(number_digits(prefix))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.trunk(&trunk.name)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("trunk {} vanished", trunk.name)))
    }

    /// A trunk by name or SID.
    pub async fn trunk(&self, name_or_sid: &str) -> Result<Option<Trunk>, StoreError> {
        let row = sqlx::query("SELECT * FROM trunks WHERE name = ? OR sid = ?")
            .bind(name_or_sid)
            .bind(name_or_sid)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.with_prefixes(&row).await?)),
            None => Ok(None),
        }
    }

    /// Every trunk, by name.
    pub async fn trunks(&self) -> Result<Vec<Trunk>, StoreError> {
        let rows = sqlx::query("SELECT * FROM trunks ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut trunks = Vec::with_capacity(rows.len());
        for row in &rows {
            trunks.push(self.with_prefixes(row).await?);
        }
        Ok(trunks)
    }

    /// Removes a trunk (by name or SID); false when there was none.
    pub async fn delete_trunk(&self, name_or_sid: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM trunk_prefixes WHERE trunk_sid IN
                (SELECT sid FROM trunks WHERE name = ? OR sid = ?)",
        )
        .bind(name_or_sid)
        .bind(name_or_sid)
        .execute(&mut *tx)
        .await?;
        let result = sqlx::query("DELETE FROM trunks WHERE name = ? OR sid = ?")
            .bind(name_or_sid)
            .bind(name_or_sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    /// The trunk serving `number`: the longest prefix of its digits that some trunk lists
    /// (`""` matches everything); ties go to the trunk whose name sorts first.
    pub async fn trunk_for_number(&self, number: &str) -> Result<Option<Trunk>, StoreError> {
        let digits = number_digits(number);
        if digits.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT t.* FROM trunk_prefixes p JOIN trunks t ON t.sid = p.trunk_sid
             WHERE substr(?, 1, length(p.prefix)) = p.prefix
             ORDER BY length(p.prefix) DESC, t.name LIMIT 1",
        )
        .bind(&digits)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.with_prefixes(&row).await?)),
            None => Ok(None),
        }
    }

    async fn with_prefixes(&self, row: &SqliteRow) -> Result<Trunk, StoreError> {
        let sid: String = row.try_get("sid")?;
        let prefixes =
            sqlx::query("SELECT prefix FROM trunk_prefixes WHERE trunk_sid = ? ORDER BY prefix")
                .bind(&sid)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("prefix"))
                .collect::<Result<Vec<_>, _>>()?;
        let max_channels: i64 = row.try_get("max_channels")?;
        Ok(Trunk {
            sid,
            name: row.try_get("name")?,
            gateway: row.try_get("gateway")?,
            transport: row.try_get("transport")?,
            username: row.try_get("username")?,
            password: row.try_get("password")?,
            caller_id: row.try_get("caller_id")?,
            dial_prefix: row.try_get("dial_prefix")?,
            strip_plus: row.try_get("strip_plus")?,
            max_channels: u32::try_from(max_channels)
                .map_err(|_| StoreError::Invalid(format!("max_channels {max_channels}")))?,
            prefixes,
            date_created: row.try_get("date_created")?,
            date_updated: row.try_get("date_updated")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str, prefixes: &[&str]) -> Trunk {
        Trunk {
            sid: format!("TK{name:0>32}"),
            name: name.into(),
            gateway: "127.0.0.1:5080".into(),
            transport: "udp".into(),
            username: Some("user".into()),
            password: Some("secret".into()),
            caller_id: None,
            dial_prefix: String::new(),
            strip_plus: false,
            max_channels: 30,
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            date_created: 1,
            date_updated: 1,
        }
    }

    #[tokio::test]
    async fn longest_prefix_wins() {
        let store = Store::open_in_memory().await.unwrap();
        store.upsert_trunk(&trunk("default", &[""])).await.unwrap();
        store.upsert_trunk(&trunk("usa", &["1"])).await.unwrap();
        store
            .upsert_trunk(&trunk("nyc", &["+1212", "1646"]))
            .await
            .unwrap();
        let name = |n: Option<Trunk>| n.map(|t| t.name);
        assert_eq!(
            name(store.trunk_for_number("+12125550100").await.unwrap()).as_deref(),
            Some("nyc")
        );
        assert_eq!(
            name(store.trunk_for_number("+16465550100").await.unwrap()).as_deref(),
            Some("nyc")
        );
        assert_eq!(
            name(store.trunk_for_number("+13125550100").await.unwrap()).as_deref(),
            Some("usa")
        );
        assert_eq!(
            name(store.trunk_for_number("+442071234567").await.unwrap()).as_deref(),
            Some("default")
        );
        assert_eq!(store.trunk_for_number("sip-user").await.unwrap(), None);
    }

    #[tokio::test]
    async fn upsert_replaces_by_name_and_delete_removes() {
        let store = Store::open_in_memory().await.unwrap();
        let first = store.upsert_trunk(&trunk("a", &["1"])).await.unwrap();
        let mut changed = trunk("a", &["44"]);
        changed.sid = "TK-other".into();
        changed.max_channels = 5;
        let second = store.upsert_trunk(&changed).await.unwrap();
        assert_eq!(second.sid, first.sid, "the name keeps its SID");
        assert_eq!(second.prefixes, vec!["44".to_string()]);
        assert_eq!(second.max_channels, 5);
        assert_eq!(store.trunk_for_number("+15551230000").await.unwrap(), None);
        assert_eq!(store.trunks().await.unwrap().len(), 1);
        assert!(store.delete_trunk("a").await.unwrap());
        assert!(!store.delete_trunk("a").await.unwrap());
        assert_eq!(store.trunk_for_number("+445551230000").await.unwrap(), None);
    }

    #[test]
    fn dial_user_applies_the_rules() {
        let mut t = trunk("x", &[]);
        assert_eq!(t.dial_user("+15551230000"), "+15551230000");
        t.strip_plus = true;
        t.dial_prefix = "9".into();
        assert_eq!(t.dial_user("+15551230000"), "915551230000");
    }
}
