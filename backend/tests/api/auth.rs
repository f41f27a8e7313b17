use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn signup_login_me(pool: PgPool) {
    let app = spawn(pool).await;
    let s = app.signup("Acme Analytics", "ada@acme.test").await;
    assert_eq!(s["role"], "owner");
    assert_eq!(s["tenant"]["name"], "Acme Analytics");
    assert_eq!(s["token_type"], "Bearer");
    assert!(s["refresh_token"].as_str().unwrap().starts_with("ihr_"));

    let me = app.get("/api/v1/me", &token(&s)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["principal"], json!({"kind": "user", "id": s["user"]["id"], "email": "ada@acme.test"}));
    assert_eq!(me.body["tenant"]["id"], s["tenant"]["id"]);
    assert_eq!(me.body["role"], "owner");

    // Emails compare case-insensitively.
    let l = app
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "ADA@acme.test", "password": PASSWORD})))
        .await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.text);
    assert_eq!(l.body["tenant"]["id"], s["tenant"]["id"]);

    for (email, password) in [("ada@acme.test", "wrong password!!"), ("nobody@acme.test", PASSWORD)] {
        let r = app
            .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password})))
            .await;
        r.assert_problem(401, None);
        assert_eq!(r.body["detail"], "wrong email or password");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn refresh_rotates_and_reuse_revokes_the_family(pool: PgPool) {
    let app = spawn(pool).await;
    let s = app.signup("Acme", "ada@acme.test").await;
    let first = s["refresh_token"].as_str().unwrap().to_string();

    let r1 = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text);
    let second = r1.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(app.get("/api/v1/me", &token(&r1.body)).await.status, StatusCode::OK);

    // The spent token again: refused, and the whole session ends with it.
    let reuse = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    reuse.assert_problem(401, None);
    let after = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": second}))).await;
    after.assert_problem(401, None);

    // A fresh login is a new family, unaffected.
    let l = app.login("ada@acme.test").await;
    let r =
        app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": l["refresh_token"]}))).await;
    assert_eq!(r.status, StatusCode::OK);

    // Log-out ends that session.
    let rt = r.body["refresh_token"].clone();
    let out = app.call(Method::POST, "/api/v1/auth/logout", None, Some(json!({"refresh_token": rt}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": rt})))
        .await
        .assert_problem(401, None);
    app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": "ihr_made_up"})))
        .await
        .assert_problem(401, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn forged_and_expired_tokens_are_refused(pool: PgPool) {
    let app = spawn(pool).await;
    let s = app.signup("Acme", "ada@acme.test").await;
    let good = token(&s);
    let (user, tenant) = (s["user"]["id"].as_str().unwrap(), s["tenant"]["id"].as_str().unwrap());
    let now = chrono::Utc::now().timestamp();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // Tampered signature.
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // Tampered payload (another tenant) under the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64.encode(
        json!({"sub": user, "tid": uuid::Uuid::new_v4(), "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4()})
            .to_string(),
    );
    let swapped = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    // alg: none, unsigned.
    let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // Signed with the right key but expired.
    let claims = json!({"iss": "icehouse", "aud": "icehouse-api", "sub": user, "tid": tenant, "iat": now - 3600,
                        "exp": now - 600, "jti": uuid::Uuid::new_v4()});
    let expired = encode(&Header::default(), &claims, &EncodingKey::from_secret(&JWT_SECRET)).unwrap();
    // Signed with the right key, valid, but for another audience, from another issuer, or saying neither.
    let right_key =
        |claims: Value| encode(&Header::default(), &claims, &EncodingKey::from_secret(&JWT_SECRET)).unwrap();
    let base = json!({"sub": user, "tid": tenant, "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4()});
    let with = |extra: Value| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let other_audience = right_key(with(json!({"iss": "icehouse", "aud": "some-other-service"})));
    let other_issuer = right_key(with(json!({"iss": "someone-else", "aud": "icehouse-api"})));
    let unscoped = right_key(base.clone());
    // Signed with another key.
    let claims = with(json!({"iss": "icehouse", "aud": "icehouse-api"}));
    let other_key =
        encode(&Header::default(), &claims, &EncodingKey::from_secret(b"another secret key of 32 bytes!!")).unwrap();
    // HS512 with the right key: only HS256 is accepted.
    let hs512 =
        encode(&Header::new(jsonwebtoken::Algorithm::HS512), &claims, &EncodingKey::from_secret(&JWT_SECRET)).unwrap();

    for (what, bad) in [
        ("tampered signature", tampered),
        ("tampered payload", swapped),
        ("alg none", alg_none),
        ("expired", expired),
        ("other key", other_key),
        ("hs512", hs512),
        ("other audience", other_audience),
        ("other issuer", other_issuer),
        ("no issuer or audience", unscoped),
        ("garbage", "not-a-token".to_string()),
        ("unknown api token", "ihk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
    ] {
        let r = app.get("/api/v1/me", &bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        r.assert_problem(401, None);
    }
    let none = app.call(Method::GET, "/api/v1/pipelines", None, None).await;
    none.assert_problem(401, None);
    assert_eq!(app.get("/api/v1/me", &good).await.status, StatusCode::OK);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_removed_member_loses_access_at_once(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = token(&app.signup("Acme", "ada@acme.test").await);
    let bob = app.member(&owner, "bob@acme.test", "editor").await;
    assert_eq!(app.get("/api/v1/pipelines", &bob).await.status, StatusCode::OK);
    let bob_id = app.get("/api/v1/me", &bob).await.body["principal"]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/api/v1/users/{bob_id}"), &owner).await.status, StatusCode::NO_CONTENT);
    // His still-unexpired access token no longer works.
    app.get("/api/v1/pipelines", &bob).await.assert_problem(401, None);
}

/// Guessing a password: wrong ones in a row from one address meet 429 with
/// `Retry-After` before the 30th, while the account's owner, from another
/// address, still logs in with the right one.
#[sqlx::test(migrations = "../migrations")]
async fn guessing_a_password_meets_429_and_the_owner_still_gets_in(pool: PgPool) {
    let app = spawn(pool).await;
    app.signup("Acme", "ada@acme.test").await;
    let wrong = json!({"email": "ada@acme.test", "password": "not the password at all"});
    let mut limited = None;
    for attempt in 1..=30 {
        let r = app.http.post(app.url("/api/v1/auth/login")).json(&wrong).send().await.unwrap();
        match r.status() {
            StatusCode::UNAUTHORIZED => continue,
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some((attempt, r));
                break;
            }
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    let (attempt, r) = limited.expect("30 wrong passwords in a row were all answered");
    assert!(attempt < 30, "429 came at attempt {attempt}");
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_u64(), body["type"].as_str()), (Some(429), Some("/problems/too-many-requests")));
    // The right password from this address waits too, …
    let right = json!({"email": "ada@acme.test", "password": PASSWORD});
    let r = app.http.post(app.url("/api/v1/auth/login")).json(&right).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // … but not from another one.
    let elsewhere = reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build();
    let r = elsewhere.unwrap().post(app.url("/api/v1/auth/login")).json(&right).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

/// Refreshing keeps a session alive only up to `auth.session_max_age_secs`
/// after its log-in, even once its first tokens have expired and been pruned;
/// then the whole session ends.
#[sqlx::test(migrations = "../migrations")]
async fn a_session_ends_at_its_max_age_however_often_refreshed(pool: PgPool) {
    let mut config = test_config();
    config.auth.refresh_token_ttl_secs = 6;
    config.auth.session_max_age_secs = 8;
    let app = spawn_with(pool.clone(), config).await;
    let s = app.signup("Acme", "ada@acme.test").await;
    let refresh = |token: &Value| {
        let body = json!({"refresh_token": token.as_str().unwrap()});
        let app = &app;
        async move { app.call(Method::POST, "/api/v1/auth/refresh", None, Some(body)).await }
    };
    let pause = |secs| tokio::time::sleep(std::time::Duration::from_secs(secs));
    pause(2).await;
    let b = refresh(&s["refresh_token"]).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    pause(2).await;
    let c = refresh(&b.body["refresh_token"]).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    pause(3).await;
    // The sign-up's token has expired: pruning takes it, the session's start stays.
    assert!(icehouse_backend::db::prune::prune(&pool, 365).await.unwrap().refresh_tokens >= 1);
    pause(2).await;
    let r = refresh(&c.body["refresh_token"]).await;
    r.assert_problem(401, None);
    assert_eq!(r.body["detail"], "this session is too old; log in again");
}

/// Behind a trusted reverse proxy the limits count the client its
/// `X-Forwarded-For` names; from anyone else the header is ignored.
#[sqlx::test(migrations = "../migrations")]
async fn forwarded_for_counts_only_from_a_trusted_proxy(pool: PgPool) {
    let mut config = test_config();
    config.auth.limits.per_address_burst = 3;
    config.auth.limits.per_address_per_minute = 1;
    // The tests' client is 127.0.0.1; 127.0.0.2 is not trusted.
    config.http.trusted_proxies = "127.0.0.1/32".into();
    let app = spawn_with(pool, config).await;
    let login = |http: reqwest::Client, forwarded: &'static str, n: u32| {
        let url = app.url("/api/v1/auth/login");
        async move {
            let body = json!({"email": format!("nobody{n}@acme.test"), "password": "not the password"});
            http.post(url).header("x-forwarded-for", forwarded).json(&body).send().await.unwrap().status()
        }
    };
    let proxy = app.http.clone();
    for n in 0..3 {
        assert_eq!(login(proxy.clone(), "203.0.113.1", n).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(proxy.clone(), "203.0.113.1", 3).await, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy has its own count; what a client
    // writes left of the proxy's entry changes nothing.
    assert_eq!(login(proxy.clone(), "203.0.113.2", 4).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(proxy.clone(), "203.0.113.2, 203.0.113.1", 5).await, StatusCode::TOO_MANY_REQUESTS);

    // A direct client cannot pick its address with the header.
    let direct = reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build();
    let direct = direct.unwrap();
    let forged = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"];
    let mut statuses = vec![];
    for (n, forwarded) in forged.into_iter().enumerate() {
        statuses.push(login(direct.clone(), forwarded, 10 + n as u32).await);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}
