//! The web UI: the static files `scripts/build-frontend.sh` builds into
//! `ui.dist_dir`, served at `/`. Every path that is not a file is a route of
//! the client-side app and answers `index.html`; paths under `/api/` never do
//! (an unknown API route stays a problem+json 404).
//!
//! Files named with a `?v=<hash>` (the build puts the content hash in every
//! URL of `index.html`) may be cached for good; anything else is revalidated.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The fallback of the whole router: the UI, and 404 problems under `/api/`.
pub fn router<S: Clone + Send + Sync + 'static>(dist_dir: &Path) -> Router<S> {
    let index = dist_dir.join("index.html");
    if index.is_file() {
        tracing::info!(dist_dir = %dist_dir.display(), "serving the web UI");
    } else {
        tracing::warn!(
            dist_dir = %dist_dir.display(),
            "no web UI built (run scripts/build-frontend.sh or set ui.dist_dir); / explains how"
        );
    }
    let files = ServeDir::new(dist_dir).fallback(ServeFile::new(&index));
    let dist = dist_dir.to_path_buf();
    Router::new()
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        .fallback_service(files)
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let dist = dist.clone();
            async move { ui_response(&dist, req, next).await }
        }))
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn ui_response(dist: &Path, req: Request, next: Next) -> Response {
    if req.uri().path() == "/api" || req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed.into_response();
    }
    // Checked on every request: building the UI does not need a restart.
    if !dist.join("index.html").is_file() {
        return not_built(dist);
    }
    let versioned = req.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("v=")));
    let mut res = next.run(req).await;
    let cache =
        if versioned && res.status() == StatusCode::OK { "public, max-age=31536000, immutable" } else { "no-cache" };
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

fn not_built(dist: &Path) -> Response {
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Icehouse</title>\
         <h1>The Icehouse web UI is not built</h1>\
         <p>Build it with <code>scripts/build-frontend.sh</code> (it writes <code>frontend/dist</code>), \
         or point the <code>ui.dist_dir</code> setting (<code>ICEHOUSE__UI__DIST_DIR</code>) at a built copy. \
         Looked in <code>{}</code>.</p>\
         <p>The REST API works without it: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p>",
        html_escape(&dist.display().to_string())
    );
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = app.clone().oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn dist() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("icehouse-ui-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html><p>app</p>").unwrap();
        std::fs::write(dir.join("pkg/app_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
        dir
    }

    #[tokio::test]
    async fn serves_files_and_falls_back_to_the_app() {
        let dir = dist();
        let app: Router = router(&dir);

        let (status, headers, body) = get(&app, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "<!doctype html><p>app</p>");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("'wasm-unsafe-eval'"));

        // A client-side route is the app.
        let (status, _, body) = get(&app, "/pipelines/0190f0a0-0000-7000-8000-000000000000").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<!doctype html><p>app</p>"));

        let (status, headers, _) = get(&app, "/pkg/app_bg.wasm?v=abc123").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");

        // Unknown API routes stay API errors.
        let (status, headers, body) = get(&app, "/api/v1/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("\"/problems/not-found\""), "{body}");

        std::fs::remove_dir_all(&dir).unwrap();
        let (status, _, body) = get(&app, "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("scripts/build-frontend.sh"), "{body}");
    }
}
