//! Extractors whose rejections are problem+json like every other error:
//! a JSON body (parsed with the path of the failing field, then validated),
//! path parameters and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use icehouse_api::{FieldError, Validate};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

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

/// The client's address: the TCP peer of the connection (the server is
/// served with [`crate::into_service`], which records it).
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| ClientAddr(info.0.ip()))
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("no peer address: serve with icehouse_backend::into_service"))
            })
    }
}
