//! The HTTP client: every call to `/api/v1`, with the session's tokens.
//!
//! The session lives in `localStorage` (so it survives reloads and is shared by
//! tabs) and refreshes itself: shortly before the access token expires, and
//! once more when a call answers 401. Refresh tokens are single use and the
//! server ends the whole session when one is presented twice, so at most one
//! refresh runs at a time in this tab, a refresh is skipped when the stored
//! tokens already changed since the failing call (another caller, or another
//! tab, refreshed them), and a tab waits while another one marks in storage
//! that it is refreshing.

use std::cell::RefCell;

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use gloo_net::http::{Method, RequestBuilder};
use icehouse_api::auth::{CheckYourEmail, RefreshRequest, SignupRequest, TokenResponse};
use icehouse_api::{FieldError, Problem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const API: &str = "/api/v1";
const STORAGE_KEY: &str = "icehouse.session";
/// `Date.now()` of a refresh in progress in some tab.
const REFRESHING_KEY: &str = "icehouse.refreshing";
/// Refresh this long before the access token expires.
const REFRESH_MARGIN_MS: f64 = 60_000.0;

/// An error to show: a message for the form and the fields at fault.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status; 0 when the server was not reached or the form was
    /// refused before sending.
    pub status: u16,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub fn from_fields(fields: Vec<FieldError>) -> Self {
        ApiError { status: 0, message: "Some fields need attention.".into(), fields }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::from_fields(vec![FieldError::new(field, message)])
    }

    fn from_response(status: u16, body: &str) -> Self {
        match serde_json::from_str::<Problem>(body) {
            Ok(p) => ApiError {
                status,
                message: match p.detail {
                    Some(detail) if !detail.is_empty() => capitalise(&detail),
                    _ => p.title,
                },
                fields: p.errors,
            },
            Err(_) => ApiError { status, message: format!("The server answered HTTP {status}."), fields: vec![] },
        }
    }

    pub fn fields_matching(&self, input_field: &str) -> Vec<FieldError> {
        self.fields.iter().filter(|e| crate::logic::field_matches(&e.field, input_field)).cloned().collect()
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What `localStorage` keeps of a session.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    /// Milliseconds since the epoch (`Date.now()` scale).
    expires_at_ms: f64,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn load_tokens() -> Option<Tokens> {
    let text = storage()?.get_item(STORAGE_KEY).ok().flatten()?;
    serde_json::from_str(&text).ok()
}

/// Stores a new session (after sign-up, log-in or refresh).
pub fn save_session(t: &TokenResponse) {
    let tokens = Tokens {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone(),
        expires_at_ms: js_sys::Date::now() + t.expires_in as f64 * 1000.0,
    };
    if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(&tokens)) {
        let _ = s.set_item(STORAGE_KEY, &text);
    }
}

pub fn has_session() -> bool {
    load_tokens().is_some()
}

fn clear_tokens() {
    if let Some(s) = storage() {
        let _ = s.remove_item(STORAGE_KEY);
    }
}

type SessionEnded = Box<dyn Fn()>;

thread_local! {
    static ON_SESSION_END: RefCell<Option<SessionEnded>> = const { RefCell::new(None) };
    static REFRESHING: RefCell<Option<Shared<LocalBoxFuture<'static, bool>>>> = const { RefCell::new(None) };
}

/// Called when the session is over (refresh refused): the app shows log-in.
pub fn on_session_end(f: impl Fn() + 'static) {
    ON_SESSION_END.with(|cell| *cell.borrow_mut() = Some(Box::new(f)));
}

fn end_session() {
    clear_tokens();
    ON_SESSION_END.with(|cell| {
        if let Some(f) = cell.borrow().as_ref() {
            f();
        }
    });
}

/// Makes sure the stored tokens are newer than `used_access` (the token a call
/// was made with). Returns whether a usable session remains.
async fn refresh_after(used_access: &str) -> bool {
    match load_tokens() {
        None => return false,
        Some(t) if t.access_token != used_access => return true,
        Some(_) => {}
    }
    let shared = REFRESHING.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                async {
                    let ok = do_refresh().await;
                    REFRESHING.with(|cell| *cell.borrow_mut() = None);
                    ok
                }
                .boxed_local()
                .shared()
            })
            .clone()
    });
    shared.await
}

async fn do_refresh() -> bool {
    let Some(tokens) = load_tokens() else { return false };
    // Another tab refreshing: wait (up to 5 s) for its tokens instead of
    // spending the same refresh token twice.
    for _ in 0..50 {
        let busy = storage()
            .and_then(|s| s.get_item(REFRESHING_KEY).ok().flatten())
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|t| js_sys::Date::now() - t < 5_000.0);
        if !busy {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
        if load_tokens().is_some_and(|t| t.refresh_token != tokens.refresh_token) {
            return true;
        }
    }
    if let Some(s) = storage() {
        let _ = s.set_item(REFRESHING_KEY, &js_sys::Date::now().to_string());
    }
    let ok = refresh_with(tokens.refresh_token).await;
    if let Some(s) = storage() {
        let _ = s.remove_item(REFRESHING_KEY);
    }
    ok
}

async fn refresh_with(refresh_token: String) -> bool {
    let body = RefreshRequest { refresh_token };
    match fetch(Method::POST, "/auth/refresh", Some(to_json(&body)), None).await {
        Ok((200, text)) => match serde_json::from_str::<TokenResponse>(&text) {
            Ok(t) => {
                save_session(&t);
                true
            }
            Err(_) => false,
        },
        // The server refused: the session is over.
        Ok((401, _)) => {
            end_session();
            false
        }
        // A network error or 5xx: keep the tokens and let the call fail; the
        // next call tries again.
        _ => load_tokens().is_some(),
    }
}

fn to_json(body: &impl Serialize) -> String {
    serde_json::to_string(body).unwrap_or_else(|_| "null".into())
}

async fn fetch(
    method: Method,
    path: &str,
    body: Option<String>,
    bearer: Option<&str>,
) -> Result<(u16, String), ApiError> {
    let mut req = RequestBuilder::new(&format!("{API}{path}")).method(method);
    if let Some(token) = bearer {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    let req = match body {
        Some(body) => req.header("content-type", "application/json").body(body),
        None => req.build(),
    }
    .map_err(|e| ApiError { status: 0, message: format!("Could not build the request: {e}"), fields: vec![] })?;
    let resp = req.send().await.map_err(|_| ApiError {
        status: 0,
        message: "Could not reach the Icehouse server. Check your network and try again.".into(),
        fields: vec![],
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, text))
}

/// One authenticated call; refreshes the session before expiry and once on 401.
async fn call(method: Method, path: &str, body: Option<String>) -> Result<String, ApiError> {
    let mut tokens = load_tokens();
    if let Some(t) = &tokens {
        if t.expires_at_ms - js_sys::Date::now() < REFRESH_MARGIN_MS {
            refresh_after(&t.access_token).await;
            tokens = load_tokens();
        }
    }
    let used = tokens.as_ref().map(|t| t.access_token.clone());
    let (mut status, mut text) = fetch(method.clone(), path, body.clone(), used.as_deref()).await?;
    if status == 401 {
        if let Some(used) = used {
            if refresh_after(&used).await {
                let fresh = load_tokens().map(|t| t.access_token);
                (status, text) = fetch(method, path, body, fresh.as_deref()).await?;
            }
        }
        if status == 401 {
            end_session();
        }
    }
    if (200..300).contains(&status) {
        Ok(text)
    } else {
        Err(ApiError::from_response(status, &text))
    }
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let text = if text.is_empty() { "null" } else { text };
    serde_json::from_str(text).map_err(|e| ApiError {
        status: 0,
        message: format!("The server's answer was not understood: {e}"),
        fields: vec![],
    })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    parse(&call(Method::GET, path, None).await?)
}

pub async fn post<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    parse(&call(Method::POST, path, Some(to_json(body))).await?)
}

/// A POST without a body (actions like pause and resume).
pub async fn post_action<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    parse(&call(Method::POST, path, None).await?)
}

pub async fn patch<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    parse(&call(Method::PATCH, path, Some(to_json(body))).await?)
}

pub async fn delete(path: &str) -> Result<(), ApiError> {
    call(Method::DELETE, path, None).await.map(|_| ())
}

/// An unauthenticated POST: the status (2xx) and the body. A 401 here is an
/// answer to show (a wrong password), not a session that ended, so it
/// neither refreshes nor logs out.
async fn public_post<B: Serialize>(path: &str, body: &B) -> Result<(u16, String), ApiError> {
    let (status, text) = fetch(Method::POST, path, Some(to_json(body)), None).await?;
    if !(200..300).contains(&status) {
        return Err(ApiError::from_response(status, &text));
    }
    Ok((status, text))
}

/// An unauthenticated call that starts nothing (asking for a password-reset
/// link, setting the new password).
pub async fn post_public<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    parse(&public_post(path, body).await?.1)
}

/// Log-in, a confirmed sign-up, an invitation accepted with a password:
/// unauthenticated calls that start a session.
pub async fn start_session<B: Serialize>(path: &str, body: &B) -> Result<TokenResponse, ApiError> {
    let tokens: TokenResponse = post_public(path, body).await?;
    save_session(&tokens);
    Ok(tokens)
}

/// A logged-in call whose answer replaces the session (a password change
/// ends every other one; an invitation accepted as oneself enters its tenant).
pub async fn replace_session<B: Serialize>(path: &str, body: &B) -> Result<TokenResponse, ApiError> {
    let tokens: TokenResponse = post(path, body).await?;
    save_session(&tokens);
    Ok(tokens)
}

/// What a sign-up answered.
pub enum SignupAnswer {
    /// Open sign-up: the tenant exists, and its owner's session is stored.
    Started,
    /// Verified sign-up: the confirmation link is on its way by e-mail.
    CheckYourEmail(CheckYourEmail),
}

pub async fn signup(req: &SignupRequest) -> Result<SignupAnswer, ApiError> {
    let (status, text) = public_post("/auth/signup", req).await?;
    if status == 202 {
        return Ok(SignupAnswer::CheckYourEmail(parse(&text)?));
    }
    let tokens: TokenResponse = parse(&text)?;
    save_session(&tokens);
    Ok(SignupAnswer::Started)
}

/// Ends the session on the server (best effort) and here.
pub async fn logout() {
    if let Some(t) = load_tokens() {
        let body = RefreshRequest { refresh_token: t.refresh_token };
        let _ = fetch(Method::POST, "/auth/logout", Some(to_json(&body)), None).await;
    }
    end_session();
}

/// A path segment, percent-encoded (topic and table names go into URLs).
pub fn seg(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}
