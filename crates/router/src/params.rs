//! The parameters Twilio sends with every voice webhook and status callback.

use store::CallStatus;

/// Facts about a call that every request to its application carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParams {
    pub call_sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub direction: String,
    pub caller_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub parent_call_sid: Option<String>,
}

impl CallParams {
    /// Parameters of a voice request (the voice URL, Gather actions, Redirects).
    pub fn voice(&self, status: CallStatus) -> Vec<(String, String)> {
        let mut params = vec![
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_string()),
            ("CallSid", self.call_sid.clone()),
            ("CallStatus", status.as_str().to_string()),
            ("Called", self.to.clone()),
            ("Caller", self.from.clone()),
            ("Direction", self.direction.clone()),
            ("From", self.from.clone()),
            ("To", self.to.clone()),
        ];
        if let Some(name) = &self.caller_name {
            params.push(("CallerName", name.clone()));
        }
        if let Some(forwarded) = &self.forwarded_from {
            params.push(("ForwardedFrom", forwarded.clone()));
        }
        if let Some(parent) = &self.parent_call_sid {
            params.push(("ParentCallSid", parent.clone()));
        }
        params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Parameters of the status callback; the driver adds `CallDuration` and `Timestamp`,
    /// which need a clock.
    pub fn status_callback(&self, call_status: &str) -> Vec<(String, String)> {
        let mut params = self.voice(CallStatus::Queued);
        for (name, value) in params.iter_mut() {
            if name == "CallStatus" {
                *value = call_status.to_string();
            }
        }
        params.push((
            "CallbackSource".to_string(),
            "call-progress-events".to_string(),
        ));
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_params_carry_twilio_names() {
        let p = CallParams {
            call_sid: "CA1".into(),
            account_sid: "AC1".into(),
            from: "+15551230000".into(),
            to: "+15005550006".into(),
            direction: "inbound".into(),
            caller_name: None,
            forwarded_from: None,
            parent_call_sid: None,
        };
        let v = p.voice(CallStatus::Ringing);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallStatus"), Some("ringing"));
        assert_eq!(get("Caller"), Some("+15551230000"));
        assert_eq!(get("Called"), Some("+15005550006"));
        assert_eq!(get("ApiVersion"), Some("2010-04-01"));
        assert_eq!(get("ParentCallSid"), None);
    }
}
