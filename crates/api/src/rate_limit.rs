//! Per-account request rate limiting of the REST API (Twilio's 20429 "Too Many Requests").
//!
//! Each authenticated account (an API key counts for its owner) has a token bucket:
//! `burst` requests at once, refilled at `per_second`. A request finding the bucket empty
//! gets HTTP 429 with Twilio's error body (code 20429) and `Retry-After`. The bucket
//! arithmetic is a pure function of time ([`TokenBucket::take`]); the middleware only reads
//! the clock and the principal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Principal;
use crate::ApiError;

/// How many requests an account may make: `per_second` sustained, `burst` at once.
/// `per_second == 0` turns limiting off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };

    fn is_unlimited(&self) -> bool {
        self.per_second == 0
    }
}

/// One account's bucket.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(limit.burst.max(1)),
            updated: now,
        }
    }

    /// Takes one token at `now`; else how long until one is there.
    pub fn take(&mut self, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(limit.per_second.max(1));
        let capacity = f64::from(limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// The buckets of every account that made requests, shared by the API's handlers.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<String, TokenBucket>>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes a token of `account`'s bucket at `now`.
    pub fn check(&self, account: &str, now: Instant) -> Result<(), Duration> {
        if self.limit.is_unlimited() {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = self.limit;
        buckets
            .entry(account.to_string())
            .or_insert_with(|| TokenBucket::new(limit, now))
            .take(limit, now)
    }
}

/// Middleware (inside authentication): 429 + 20429 when the principal's bucket is empty.
pub async fn limit_requests(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let account = request
        .extensions()
        .get::<Principal>()
        .map(|p| p.sid().to_string());
    if let Some(account) = account {
        if let Err(wait) = limiter.check(&account, Instant::now()) {
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests")
                    .into_response();
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert("Retry-After", value);
            }
            return response;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10,
        burst: 3,
    };

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            assert_eq!(bucket.take(LIMIT, t0), Ok(()));
        }
        let wait = bucket.take(LIMIT, t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // 100 ms later exactly one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(bucket.take(LIMIT, t1), Ok(()));
        assert!(bucket.take(LIMIT, t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(LIMIT, t2), Ok(()));
        }
        assert!(bucket.take(LIMIT, t2).is_err());
    }

    #[test]
    fn accounts_have_their_own_buckets() {
        let limiter = RateLimiter::new(LIMIT);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("AC1", now).is_ok());
        }
        assert!(limiter.check("AC1", now).is_err());
        assert!(limiter.check("AC2", now).is_ok());
    }

    #[test]
    fn zero_per_second_is_unlimited() {
        let limiter = RateLimiter::new(RateLimit::UNLIMITED);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.check("AC1", now).is_ok());
        }
    }
}
