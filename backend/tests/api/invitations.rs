//! Members join by invitation; passwords are changed by their owner or
//! reset by e-mail; verified sign-up. The mail goes through a real SMTP
//! server on loopback (aiosmtpd), and the tests read the links from it.

use icehouse_backend::config::{Config, MailTls, SignupMode};
use icehouse_e2e::mail::SmtpSink;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

const VICTIM: &str = "cfo@victim.test";
const ATTACKER_PASSWORD: &str = "the attacker knows this one";
const VICTIM_PASSWORD: &str = "only the cfo knows this one";

fn mail_config(smtp: &SmtpSink) -> Config {
    let mut config = test_config();
    config.mail.smtp_host = Some("127.0.0.1".into());
    config.mail.smtp_port = smtp.port;
    config.mail.tls = MailTls::None;
    config.http.public_url = Some("http://icehouse.test".into());
    config
}

async fn public(app: &TestApp, path: &str, body: Value) -> Resp {
    app.call(Method::POST, path, None, Some(body)).await
}

async fn login_as(app: &TestApp, email: &str, password: &str, tenant: Option<&str>) -> Resp {
    let mut body = json!({"email": email, "password": password});
    if let Some(tenant) = tenant {
        body["tenant_id"] = json!(tenant);
    }
    public(app, "/api/v1/auth/login", body).await
}

/// The attack of issue 10, item 1: an admin of one tenant makes an account
/// for another company's address, then waits for that company to add it.
#[sqlx::test(migrations = "../migrations")]
async fn a_pre_created_account_cannot_take_over_an_invited_address(pool: PgPool) {
    let smtp = SmtpSink::start().unwrap();
    let app = spawn_with(pool, mail_config(&smtp)).await;
    let attacker = token(&app.signup("Mallory Inc", "mallory@evil.test").await);

    // The old way in is gone: no tenant sets the password of an account.
    let old =
        app.post("/api/v1/users", &attacker, json!({"email": VICTIM, "role": "viewer", "password": ATTACKER_PASSWORD}));
    old.await.assert_problem(405, None);

    // The attacker invites the address to their own tenant and, holding the
    // link, makes the account with a password of their own, then leaves.
    let link = app.invite(&attacker, VICTIM, "viewer").await;
    let made = app.accept(&link, ATTACKER_PASSWORD).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let (attacker_refresh, victim_id) = (made.body["refresh_token"].clone(), made.body["user"]["id"].clone());
    let victim_id = victim_id.as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/users/{victim_id}"), &attacker).await.status, StatusCode::NO_CONTENT);

    // The victim's admin invites the address; the link goes to it by mail.
    let admin = app.signup("Victim Corp", "admin@victim.test").await;
    let victim_tenant = admin["tenant"]["id"].as_str().unwrap().to_string();
    let created = app.post("/api/v1/invitations", &token(&admin), json!({"email": VICTIM, "role": "admin"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["mail"], "sent");
    let mail = smtp.wait_for(VICTIM, 2).await.unwrap();
    assert!(mail.subject.contains("Victim Corp"), "{mail:?}");
    assert!(mail.body.contains("http://icehouse.test/invitations/accept#token="), "{mail:?}");
    let victim_link = mail.token().unwrap();
    assert_eq!(victim_link, created.body["token"].as_str().unwrap());

    // The attacker's password opens nothing in the victim's tenant, and
    // accepting the invitation needs the account's password, which a guess is not.
    login_as(&app, VICTIM, ATTACKER_PASSWORD, Some(&victim_tenant)).await.assert_problem(401, None);
    app.accept(&victim_link, "a guess at the password").await.assert_problem(401, None);
    let members = app.get("/api/v1/users", &token(&admin)).await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1, "{}", members.text);

    // The address's owner takes the account back by e-mail: every way the
    // attacker had in closes.
    let asked = public(&app, "/api/v1/auth/password-reset", json!({"email": VICTIM})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text);
    let reset = smtp.wait_for(VICTIM, 3).await.unwrap();
    assert!(reset.subject.contains("Reset"), "{reset:?}");
    let reset_token = reset.token().unwrap();
    let body = json!({"token": reset_token, "new_password": VICTIM_PASSWORD});
    assert_eq!(public(&app, "/api/v1/auth/password-reset/confirm", body.clone()).await.status, StatusCode::NO_CONTENT);
    public(&app, "/api/v1/auth/password-reset/confirm", body).await.assert_problem(404, None);
    app.accept(&victim_link, ATTACKER_PASSWORD).await.assert_problem(401, None);
    let refresh = public(&app, "/api/v1/auth/refresh", json!({"refresh_token": attacker_refresh})).await;
    refresh.assert_problem(401, None);

    // The owner joins with their own password, as the role they were invited to, once.
    let joined = app.accept(&victim_link, VICTIM_PASSWORD).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    assert_eq!(
        (joined.body["tenant"]["name"].as_str(), joined.body["role"].as_str()),
        (Some("Victim Corp"), Some("admin"))
    );
    app.accept(&victim_link, VICTIM_PASSWORD).await.assert_problem(404, None);
    login_as(&app, VICTIM, ATTACKER_PASSWORD, Some(&victim_tenant)).await.assert_problem(401, None);
    assert_eq!(login_as(&app, VICTIM, VICTIM_PASSWORD, Some(&victim_tenant)).await.status, StatusCode::OK);
}

/// Verified sign-up, member invitations and reset requests answer the same
/// for an address with an account as for one without.
#[sqlx::test(migrations = "../migrations")]
async fn signup_invitations_and_resets_tell_nobody_which_addresses_have_accounts(pool: PgPool) {
    let smtp = SmtpSink::start().unwrap();
    let mut config = mail_config(&smtp);
    config.auth.signup = Some(SignupMode::Verified);
    let app = spawn_with(pool, config).await;
    let signup = |tenant: &str, email: &str| json!({"tenant_name": tenant, "email": email, "password": PASSWORD});

    // A new address: "check your e-mail", and the link makes the tenant, once.
    let first = public(&app, "/api/v1/auth/signup", signup("Acme", "ada@acme.test")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(app.count("tenants").await, 0);
    let mail = smtp.wait_for("ada@acme.test", 1).await.unwrap();
    assert!(mail.body.contains("http://icehouse.test/signup/confirm#token="), "{mail:?}");
    let confirm = json!({"token": mail.token().unwrap()});
    let session = public(&app, "/api/v1/auth/signup/confirm", confirm.clone()).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    assert_eq!((session.body["tenant"]["name"].as_str(), session.body["role"].as_str()), (Some("Acme"), Some("owner")));
    public(&app, "/api/v1/auth/signup/confirm", confirm).await.assert_problem(404, None);
    let owner = token(&session.body);

    // The same address again: the same answer; the mail says it has an account, and nothing is made.
    let again = public(&app, "/api/v1/auth/signup", signup("Acme Two", "ada@acme.test")).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    let note = smtp.wait_for("ada@acme.test", 2).await.unwrap();
    assert!(note.subject.contains("already have"), "{note:?}");
    assert!(note.token().is_none(), "{note:?}");
    assert_eq!(app.count("tenants").await, 1);
    assert_eq!(app.count("signup_requests").await, 0);

    // Inviting an address with an account looks like inviting one without.
    public(&app, "/api/v1/auth/signup", signup("Bobs", "bob@bobs.test")).await;
    let bob = smtp.wait_for("bob@bobs.test", 1).await.unwrap().token().unwrap();
    public(&app, "/api/v1/auth/signup/confirm", json!({"token": bob})).await;
    let shape = |r: &Resp| {
        let mut keys: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (r.status, keys, r.body["mail"].clone(), r.body["role"].clone())
    };
    let existing = app.post("/api/v1/invitations", &owner, json!({"email": "bob@bobs.test", "role": "viewer"})).await;
    let new = app.post("/api/v1/invitations", &owner, json!({"email": "carol@acme.test", "role": "viewer"})).await;
    assert_eq!(shape(&existing), shape(&new), "{} / {}", existing.text, new.text);

    // A reset request for an unknown address answers as for a known one, and mails nobody.
    let known = public(&app, "/api/v1/auth/password-reset", json!({"email": "bob@bobs.test"})).await;
    let unknown = public(&app, "/api/v1/auth/password-reset", json!({"email": "nobody@acme.test"})).await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(known.status, StatusCode::ACCEPTED);
    smtp.wait_for("bob@bobs.test", 2).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(smtp.to("nobody@acme.test").is_empty());
}

/// Without mail, verified sign-up and reset say so; invitations still work,
/// their link shown to the admin only.
#[sqlx::test(migrations = "../migrations")]
async fn without_mail_links_are_shown_and_reset_is_unavailable(pool: PgPool) {
    let mut config = test_config();
    config.auth.signup = Some(SignupMode::Verified);
    let app = spawn_with(pool, config).await;
    let body = json!({"tenant_name": "Acme", "email": "ada@acme.test", "password": PASSWORD});
    public(&app, "/api/v1/auth/signup", body).await.assert_problem(503, None);
    public(&app, "/api/v1/auth/password-reset", json!({"email": "ada@acme.test"})).await.assert_problem(503, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn changing_the_password_ends_every_other_session(pool: PgPool) {
    let app = spawn(pool).await;
    let first = app.signup("Acme", "ada@acme.test").await;
    let other = app.login("ada@acme.test").await;
    let change = |current: &str| json!({"current_password": current, "new_password": VICTIM_PASSWORD});

    app.post("/api/v1/me/password", &token(&first), change("not the password"))
        .await
        .assert_problem(422, Some("current_password"));
    let changed = app.post("/api/v1/me/password", &token(&first), change(PASSWORD)).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);

    // The access tokens from before the change (in the same second, too),
    // and every refresh token, no longer work.
    for old in [&first, &other] {
        app.get("/api/v1/me", &token(old)).await.assert_problem(401, None);
        public(&app, "/api/v1/auth/refresh", json!({"refresh_token": old["refresh_token"]}))
            .await
            .assert_problem(401, None);
    }
    assert_eq!(app.get("/api/v1/me", &token(&changed.body)).await.status, StatusCode::OK);
    login_as(&app, "ada@acme.test", PASSWORD, None).await.assert_problem(401, None);
    assert_eq!(login_as(&app, "ada@acme.test", VICTIM_PASSWORD, None).await.status, StatusCode::OK);

    // An API token has no password.
    let api = app.post("/api/v1/api-tokens", &token(&changed.body), json!({"name": "ci", "role": "viewer"})).await;
    let api = api.body["secret"].as_str().unwrap().to_string();
    app.post("/api/v1/me/password", &api, change(VICTIM_PASSWORD)).await.assert_problem(403, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_invitation_works_once_for_its_address_until_withdrawn_or_expired(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = token(&app.signup("Acme", "ada@acme.test").await);
    let other = app.signup("Bobs", "bob@bobs.test").await;

    // Inviting again replaces the open invitation; withdrawing ends it.
    let first = app.invite(&owner, "bob@bobs.test", "editor").await;
    let second = app.invite(&owner, "bob@bobs.test", "editor").await;
    app.accept(&first, PASSWORD).await.assert_problem(404, None);
    let pending = app.get("/api/v1/invitations", &owner).await;
    let items = pending.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", pending.text);
    assert!(items[0].get("token").is_none(), "a listed invitation shows no secret");

    // A logged-in account joins by its session, only if it has the invited address.
    let carol = app.invite(&owner, "carol@acme.test", "viewer").await;
    let accept = |t: &str| json!({"token": t});
    app.call(Method::POST, "/api/v1/invitations/accept", Some(&token(&other)), Some(accept(&carol)))
        .await
        .assert_problem(403, None);
    let joined =
        app.call(Method::POST, "/api/v1/invitations/accept", Some(&token(&other)), Some(accept(&second))).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    assert_eq!((joined.body["tenant"]["name"].as_str(), joined.body["role"].as_str()), (Some("Acme"), Some("editor")));
    app.post("/api/v1/invitations", &owner, json!({"email": "BOB@bobs.test", "role": "viewer"}))
        .await
        .assert_problem(409, Some("email"));

    // A new account needs a proper password.
    app.accept(&carol, "short").await.assert_problem(422, Some("password"));
    let id = app.get("/api/v1/invitations", &owner).await.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/api/v1/invitations/{id}"), &owner).await.status, StatusCode::NO_CONTENT);
    app.accept(&carol, PASSWORD).await.assert_problem(404, None);

    // An expired one is refused.
    let dave = app.invite(&owner, "dave@acme.test", "viewer").await;
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second'").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    app.accept(&dave, PASSWORD).await.assert_problem(404, None);

    // What an admin invited goes when they lose the right to invite it.
    let boss = app.member(&owner, "boss@acme.test", "owner").await;
    let eve = app.invite(&boss, "eve@acme.test", "owner").await;
    let frank = app.invite(&boss, "frank@acme.test", "admin").await;
    let boss_id = app.get("/api/v1/me", &boss).await.body["principal"]["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/users/{boss_id}"), &owner, json!({"role": "admin"})).await;
    app.accept(&eve, PASSWORD).await.assert_problem(404, None);
    assert_eq!(app.delete(&format!("/api/v1/users/{boss_id}"), &owner).await.status, StatusCode::NO_CONTENT);
    app.accept(&frank, PASSWORD).await.assert_problem(404, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn reset_requests_are_limited_per_address_and_their_mail_per_recipient(pool: PgPool) {
    let smtp = SmtpSink::start().unwrap();
    let app = spawn_with(pool, mail_config(&smtp)).await;
    app.signup("Acme", "ada@acme.test").await;
    let mut statuses = vec![];
    for _ in 0..25 {
        statuses.push(public(&app, "/api/v1/auth/password-reset", json!({"email": "ada@acme.test"})).await.status);
    }
    let first_429 = statuses.iter().position(|s| *s == StatusCode::TOO_MANY_REQUESTS);
    assert!(first_429.is_some_and(|i| i < 24), "{statuses:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = smtp.to("ada@acme.test");
    assert_eq!(mails.len(), 5, "the recipient's burst: {mails:?}");
}
