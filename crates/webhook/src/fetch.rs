//! The sans-IO core of one webhook fetch: what to send for each hop (URL,
//! method, form body, signature) and what a response status means (done,
//! follow a redirect, or fail). The async client only moves bytes.
//!
//! Redirects: 307/308 (and 301/302, which Twilio follows too) repeat the
//! request with the same method and parameters; 303 switches to a GET of the
//! `Location` as given. Every hop is signed for its own URL.

use url::Url;

use crate::error::WebhookError;
use crate::signing::signature;

/// HTTP method of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    Get,
    #[default]
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One webhook to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    pub method: Method,
    /// Form fields (POST) or query parameters (GET); repeated names allowed.
    pub params: Vec<(String, String)>,
    /// The account's auth token, used to sign.
    pub auth_token: String,
}

/// Everything needed to put one hop on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    pub method: Method,
    /// The exact URL requested (for GET, parameters already in the query).
    pub url: Url,
    /// `application/x-www-form-urlencoded` body for POST.
    pub form_body: Option<String>,
    /// `X-Twilio-Signature`.
    pub signature: String,
}

/// What to do after the response headers of a hop arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// 2xx: read the body; the fetch is complete.
    ReadBody,
    /// A redirect: send [`Fetch::hop`] (now the redirect target).
    FollowRedirect,
}

/// State of one fetch across redirects.
#[derive(Debug)]
pub(crate) struct Fetch<'a> {
    request: &'a WebhookRequest,
    hop: Hop,
    redirects_followed: usize,
    max_redirects: usize,
}

impl<'a> Fetch<'a> {
    /// Plans the first hop; fails with `BadUrl` for unusable URLs.
    pub fn new(request: &'a WebhookRequest, max_redirects: usize) -> Result<Self, WebhookError> {
        let url = parse_http_url(&request.url)?;
        Ok(Fetch {
            hop: plan_hop(request, request.method, url, true),
            request,
            redirects_followed: 0,
            max_redirects,
        })
    }

    /// The hop to send now.
    pub fn hop(&self) -> &Hop {
        &self.hop
    }

    /// Interprets a response status (and `Location` header, if any).
    pub fn on_response(
        &mut self,
        status: u16,
        location: Option<&str>,
    ) -> Result<Next, WebhookError> {
        if (200..300).contains(&status) {
            return Ok(Next::ReadBody);
        }
        let current_url = self.hop.url.as_str();
        let method = match status {
            301 | 302 | 307 | 308 => self.hop.method,
            303 => Method::Get,
            _ => {
                return Err(WebhookError::Status {
                    url: current_url.to_owned(),
                    status,
                })
            }
        };
        let Some(location) = location.map(str::trim).filter(|l| !l.is_empty()) else {
            return Err(WebhookError::Status {
                url: current_url.to_owned(),
                status,
            });
        };
        if self.redirects_followed >= self.max_redirects {
            return Err(WebhookError::TooManyRedirects {
                url: current_url.to_owned(),
            });
        }
        let target = self
            .hop
            .url
            .join(location)
            .map_err(|_| WebhookError::BadUrl {
                url: location.to_owned(),
            })?;
        if !is_http(&target) {
            return Err(WebhookError::BadUrl { url: target.into() });
        }
        self.redirects_followed += 1;
        self.hop = plan_hop(self.request, method, target, false);
        Ok(Next::FollowRedirect)
    }
}

/// Parses an absolute http(s) URL with a host.
fn parse_http_url(raw: &str) -> Result<Url, WebhookError> {
    match Url::parse(raw.trim()) {
        Ok(url) if is_http(&url) => Ok(url),
        _ => Err(WebhookError::BadUrl {
            url: raw.to_owned(),
        }),
    }
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|host| !host.is_empty())
}

/// Builds a hop. Parameters go in the body for POST; for GET they are added
/// to the query of the first hop only (a redirect `Location` is used as is).
fn plan_hop(request: &WebhookRequest, method: Method, mut url: Url, first: bool) -> Hop {
    match method {
        Method::Post => {
            let form_body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(request.params.iter())
                .finish();
            Hop {
                signature: signature(&request.auth_token, url.as_str(), &request.params),
                method,
                url,
                form_body: Some(form_body),
            }
        }
        Method::Get => {
            if first && !request.params.is_empty() {
                url.query_pairs_mut().extend_pairs(request.params.iter());
            }
            Hop {
                signature: signature(&request.auth_token, url.as_str(), &[]),
                method,
                url,
                form_body: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, url: &str) -> WebhookRequest {
        WebhookRequest {
            url: url.into(),
            method,
            params: vec![
                ("From".into(), "+1 555".into()),
                ("Digits".into(), "1#".into()),
                ("Event".into(), "b".into()),
                ("Event".into(), "a".into()),
            ],
            auth_token: "secret".into(),
        }
    }

    #[test]
    fn post_hop_has_form_body_and_signs_url_plus_params() {
        let req = request(Method::Post, "http://app.example/hook?x=1");
        let fetch = Fetch::new(&req, 5).unwrap();
        let hop = fetch.hop();
        assert_eq!(hop.url.as_str(), "http://app.example/hook?x=1");
        assert_eq!(
            hop.form_body.as_deref(),
            Some("From=%2B1+555&Digits=1%23&Event=b&Event=a")
        );
        assert_eq!(
            hop.signature,
            signature("secret", "http://app.example/hook?x=1", &req.params)
        );
    }

    #[test]
    fn get_hop_appends_params_and_signs_the_url_alone() {
        let req = request(Method::Get, "http://app.example/hook?x=1");
        let fetch = Fetch::new(&req, 5).unwrap();
        let hop = fetch.hop();
        let expected = "http://app.example/hook?x=1&From=%2B1+555&Digits=1%23&Event=b&Event=a";
        assert_eq!(hop.url.as_str(), expected);
        assert_eq!(hop.form_body, None);
        assert_eq!(hop.signature, signature("secret", expected, &[]));
    }

    #[test]
    fn get_without_params_keeps_url() {
        let mut req = request(Method::Get, "http://app.example/hook");
        req.params.clear();
        let fetch = Fetch::new(&req, 5).unwrap();
        assert_eq!(fetch.hop().url.as_str(), "http://app.example/hook");
    }

    #[test]
    fn success_reads_body() {
        let req = request(Method::Post, "http://a.example/");
        let mut fetch = Fetch::new(&req, 5).unwrap();
        assert_eq!(fetch.on_response(200, None), Ok(Next::ReadBody));
        assert_eq!(fetch.on_response(204, Some("/ignored")), Ok(Next::ReadBody));
    }

    #[test]
    fn redirects_keep_post_except_303_and_are_resigned() {
        for (status, method) in [
            (301, Method::Post),
            (302, Method::Post),
            (307, Method::Post),
            (308, Method::Post),
            (303, Method::Get),
        ] {
            let req = request(Method::Post, "http://a.example/dir/hook");
            let mut fetch = Fetch::new(&req, 5).unwrap();
            assert_eq!(
                fetch.on_response(status, Some("next?y=2")),
                Ok(Next::FollowRedirect)
            );
            let hop = fetch.hop();
            assert_eq!(
                hop.url.as_str(),
                "http://a.example/dir/next?y=2",
                "{status}"
            );
            assert_eq!(hop.method, method, "{status}");
            match method {
                Method::Post => {
                    assert!(hop.form_body.is_some());
                    assert_eq!(
                        hop.signature,
                        signature("secret", hop.url.as_str(), &req.params)
                    );
                }
                Method::Get => {
                    assert_eq!(hop.form_body, None);
                    assert_eq!(hop.signature, signature("secret", hop.url.as_str(), &[]));
                }
            }
        }
    }

    #[test]
    fn get_redirect_uses_location_as_is() {
        let req = request(Method::Get, "http://a.example/hook");
        let mut fetch = Fetch::new(&req, 5).unwrap();
        fetch
            .on_response(301, Some("https://b.example/new?q=1"))
            .unwrap();
        assert_eq!(fetch.hop().url.as_str(), "https://b.example/new?q=1");
    }

    #[test]
    fn redirect_limit_is_enforced() {
        let req = request(Method::Post, "http://a.example/loop");
        let mut fetch = Fetch::new(&req, 2).unwrap();
        assert_eq!(
            fetch.on_response(302, Some("/loop")),
            Ok(Next::FollowRedirect)
        );
        assert_eq!(
            fetch.on_response(302, Some("/loop")),
            Ok(Next::FollowRedirect)
        );
        let err = fetch.on_response(302, Some("/loop")).unwrap_err();
        assert_eq!(
            err,
            WebhookError::TooManyRedirects {
                url: "http://a.example/loop".into()
            }
        );
        assert_eq!(err.twilio_code(), 11215);
    }

    #[test]
    fn error_statuses_and_broken_redirects() {
        let req = request(Method::Post, "http://a.example/");
        for status in [100, 304, 400, 404, 500, 503] {
            let mut fetch = Fetch::new(&req, 5).unwrap();
            let err = fetch.on_response(status, Some("/x")).unwrap_err();
            assert_eq!(
                err,
                WebhookError::Status {
                    url: "http://a.example/".into(),
                    status
                }
            );
            assert_eq!(err.twilio_code(), 11200);
        }
        let mut fetch = Fetch::new(&req, 5).unwrap();
        assert_eq!(
            fetch.on_response(302, None).unwrap_err().twilio_code(),
            11200
        );
        let mut fetch = Fetch::new(&req, 5).unwrap();
        assert_eq!(
            fetch
                .on_response(302, Some("ftp://x/"))
                .unwrap_err()
                .twilio_code(),
            11210
        );
    }

    #[test]
    fn unusable_urls_are_bad_url() {
        for url in [
            "",
            "not a url",
            "ftp://a.example/x",
            "http://",
            "mailto:a@b",
            "/relative",
        ] {
            let req = request(Method::Post, url);
            let err = Fetch::new(&req, 5).unwrap_err();
            assert_eq!(err, WebhookError::BadUrl { url: url.into() });
            assert_eq!(err.twilio_code(), 11210);
        }
    }
}
