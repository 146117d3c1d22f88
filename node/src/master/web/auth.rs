//! Closed by default. The master prints `http://ADDR/?token=TOKEN`; the
//! token is derived from the cluster key (`ClusterKey::web_token`), so it
//! is the same after a restart and whoever holds the key can open the
//! page. Opening that URL sets the token as a cookie (`HttpOnly`, so the
//! page's scripts never see it; `SameSite=Strict`, so no other site's page
//! can send it) and redirects to `/`, out of the address bar and history.
//!
//! Every route but `/health` needs the cookie. A request that changes
//! something (every `POST`) must also carry the `X-Tessera-Request` header,
//! which a cross-site form cannot send and a cross-site script cannot send
//! without a CORS preflight that nothing here answers, and, when the
//! browser names an `Origin`, come from this very host.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};

use super::{Shared, refusal::Refusal};

/// The cookie that carries the token.
pub const COOKIE: &str = "tessera_token";
/// The header every state-changing request carries.
pub const REQUEST_HEADER: &str = "x-tessera-request";

/// The page's token (see the module docs).
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(token: String) -> Self {
        Token(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `other` differs.
    fn matches(&self, other: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), other.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }
}

/// The token from `?token=` in a query string.
fn query_token(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// The token from the request's cookie.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Why a state-changing request is refused as possibly cross-site.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if headers.get(REQUEST_HEADER).is_none() {
        return Some("a request that changes something must carry the X-Tessera-Request header");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same = match (origin.to_str().ok(), host) {
            (Some(origin), Some(host)) => origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host)),
            _ => false,
        };
        if !same {
            return Some("a request from another site's page is refused");
        }
    }
    None
}

const CLOSED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>tessera</title>\
<p>This page needs the link the master printed when it started: \
<code>web page on http://ADDR/?token=TOKEN</code>.</p>";

/// Lets through requests that carry the token; turns `/?token=` into the cookie.
pub async fn guard(State(web): State<Shared>, req: Request, next: Next) -> Response {
    let token = &web.token;
    if req.method() == Method::GET
        && req.uri().path() == "/"
        && let Some(offered) = req.uri().query().and_then(query_token)
    {
        if !token.matches(offered) {
            return Refusal::new(
                StatusCode::UNAUTHORIZED,
                "wrong token: open the link the master printed when it started",
            )
            .into_response();
        }
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            token.as_str()
        );
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response();
    }
    if !cookie_token(req.headers()).is_some_and(|c| token.matches(c)) {
        if req.uri().path() == "/" {
            return (StatusCode::UNAUTHORIZED, Html(CLOSED_PAGE)).into_response();
        }
        return Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no valid token: open the link the master printed when it started",
        )
        .into_response();
    }
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && let Some(why) = cross_site(req.headers())
    {
        return Refusal::new(StatusCode::FORBIDDEN, why).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_are_read_from_the_query_and_the_cookie() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc"));
        assert_eq!(query_token("tokens=abc"), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; tessera_token=abc; y=2"),
        );
        assert_eq!(cookie_token(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("tessera_tokenx=abc"),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::new("0123abcd".into());
        assert!(t.matches("0123abcd"));
        assert!(!t.matches("0123abce"));
        assert!(!t.matches("0123abc"));
        assert!(!t.matches(""));
    }

    #[test]
    fn a_change_needs_the_header_and_this_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(cross_site(&h).is_some());
        h.insert(REQUEST_HEADER, HeaderValue::from_static("1"));
        assert_eq!(cross_site(&h), None);
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert_eq!(cross_site(&h), None);
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h).is_some());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h).is_some());
    }
}
