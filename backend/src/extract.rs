//! Extractors whose rejections are problem+json like every other error:
//! a JSON body (parsed with the path of the failing field, then validated),
//! path parameters and query strings.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use icehouse_api::{FieldError, Validate};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON request body, deserialized strictly and then validated.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest { detail: "could not read the request body".into(), errors: vec![] }
            }
        })?;
        let value = parse_json::<T>(&bytes)?;
        refuse_nul(&bytes)?;
        value.validate().map_err(ApiError::Validation)?;
        Ok(ApiJson(value))
    }
}

/// Postgres keeps no U+0000 in `text` or `jsonb`, so no text of this API may
/// hold one: refused here, naming its field, instead of failing as a database
/// fault wherever the text is first stored or looked up.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    // JSON carries U+0000 only as this escape, which nearly no body has.
    if !bytes.windows(6).any(|w| w == br"\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Ok(()) };
    match nul_at(&value, String::new()) {
        Some(field) => Err(ApiError::field(&field, "must not contain the NUL character (U+0000)")),
        None => Ok(()),
    }
}

/// The path (as serde_path_to_error writes it) of the first string or key holding U+0000.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if key.contains('\0') {
                Some(path)
            } else {
                nul_at(item, path)
            }
        }),
        _ => None,
    }
}

/// Parses JSON, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    let err = match result {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let inner = err.inner();
    let message = inner.to_string();
    let path = err.path().to_string();
    let base = if path == "." { String::new() } else { path };
    // serde names the missing or unknown field in backticks; the path stops at its parent.
    let named = message.split('`').nth(1).map(str::to_string);
    let (field, text) = if message.starts_with("missing field") {
        (join(&base, named.as_deref()), "is required".to_string())
    } else if message.starts_with("unknown field") {
        (join(&base, named.as_deref()), "is not a known field".to_string())
    } else if inner.is_syntax() || inner.is_eof() {
        return Err(ApiError::BadRequest { detail: format!("the body is not valid JSON: {message}"), errors: vec![] });
    } else {
        (if base.is_empty() { "body".into() } else { base }, strip_position(&message))
    };
    Err(ApiError::BadRequest { detail: format!("{field}: {text}"), errors: vec![FieldError::new(field, text)] })
}

fn join(base: &str, name: Option<&str>) -> String {
    // For an unknown field the path already ends at the field itself.
    if let Some(name) = name {
        if base == name || base.ends_with(&format!(".{name}")) {
            return base.to_string();
        }
    }
    match (base.is_empty(), name) {
        (_, None) => {
            if base.is_empty() {
                "body".into()
            } else {
                base.into()
            }
        }
        (true, Some(name)) => name.into(),
        (false, Some(name)) => format!("{base}.{name}"),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Path parameters; an id that does not parse names nothing that exists: 404.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|_| ApiError::NotFound("resource"))
    }
}

/// A query string, parsed strictly.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let message = err.inner().to_string();
            let path = err.path().to_string();
            let field = match message.split('`').nth(1) {
                Some(name) if message.starts_with("unknown field") => name.to_string(),
                _ if path != "." => path,
                _ => "query".to_string(),
            };
            let text = if message.starts_with("unknown field") {
                "is not a known query parameter".to_string()
            } else {
                message
            };
            ApiError::BadRequest { detail: format!("{field}: {text}"), errors: vec![FieldError::new(field, text)] }
        })
    }
}

/// The client's address: the TCP peer of the connection ([`crate::serve`]
/// records it), or, when that peer is a trusted proxy (`http.trusted_proxies`),
/// the address its `X-Forwarded-For` names ([`client_address`]).
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("no peer address: serve with icehouse_backend::serve"))
        })?;
        Ok(ClientAddr(client_address(peer, &parts.headers, &state.trusted_proxies)))
    }
}

/// The client behind `peer`: `X-Forwarded-For` is read from the right (the
/// hop the nearest proxy added) past every trusted proxy, and the first
/// address that is not one is the client. Anything left of it is whatever
/// the client claimed, so it is never believed; neither is the header when
/// `peer` is not trusted. An entry that is not an address ends the walk at
/// the last trusted hop.
pub fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    // `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is 10.0.0.1.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::client_address;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.7/32".parse().unwrap()];
        let headers = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            h
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // A direct client's header is its own claim.
        assert_eq!(client_address(ip("203.0.113.9"), &headers(&["1.2.3.4"]), &trusted), ip("203.0.113.9"));
        // Behind proxies: the first untrusted hop from the right, whatever the client put left of it.
        let chain = headers(&["6.6.6.6, 198.51.100.1", "192.0.2.7"]);
        assert_eq!(client_address(ip("10.1.2.3"), &chain, &trusted), ip("198.51.100.1"));
        assert_eq!(client_address(ip("10.1.2.3"), &headers(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        // An IPv4 proxy seen on a dual-stack socket is still the trusted proxy.
        assert_eq!(client_address(ip("::ffff:10.1.2.3"), &headers(&["198.51.100.1"]), &trusted), ip("198.51.100.1"));
        // No header, or garbage where the client's address should be: the proxy itself.
        assert_eq!(client_address(ip("10.1.2.3"), &HeaderMap::new(), &trusted), ip("10.1.2.3"));
        assert_eq!(client_address(ip("10.1.2.3"), &headers(&["not an address"]), &trusted), ip("10.1.2.3"));
        // Nothing trusted: the header never counts.
        assert_eq!(client_address(ip("10.1.2.3"), &headers(&["1.2.3.4"]), &[]), ip("10.1.2.3"));
    }
}
