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
    config.mail.smtp_port = Some(smtp.port);
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

/// Signs up with verified sign-up: the link from the mail makes the tenant.
async fn signup_verified(app: &TestApp, smtp: &SmtpSink, tenant: &str, email: &str) -> Value {
    let before = smtp.to(email).len();
    let body = json!({"tenant_name": tenant, "email": email, "password": PASSWORD});
    assert_eq!(public(app, "/api/v1/auth/signup", body).await.status, StatusCode::ACCEPTED);
    let link = smtp.wait_for(email, before + 1).await.unwrap().token().unwrap();
    let session = public(app, "/api/v1/auth/signup/confirm", json!({"token": link})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.text);
    session.body
}

fn verified_config(smtp: &SmtpSink) -> Config {
    let mut config = mail_config(smtp);
    config.auth.signup = Some(SignupMode::Verified);
    config
}

/// The problem without its per-response id, for comparing two answers.
fn answer(r: &Resp) -> (StatusCode, Value) {
    let mut body = r.body.clone();
    body.as_object_mut().map(|o| o.remove("error_id"));
    (r.status, body)
}

/// The attack of issue 10, item 1: an admin of one tenant makes an account
/// for another company's address with a password they know, then waits for
/// that company to add the address. On a server as `serve` runs it.
#[sqlx::test(migrations = "../migrations")]
async fn a_pre_created_account_cannot_take_over_an_invited_address(pool: PgPool) {
    let smtp = SmtpSink::start().unwrap();
    let app = spawn_with(pool, verified_config(&smtp)).await;
    let attacker = token(&signup_verified(&app, &smtp, "Mallory Inc", "mallory@evil.test").await);

    // The old way in is gone: no tenant sets the password of an account.
    let old =
        app.post("/api/v1/users", &attacker, json!({"email": VICTIM, "role": "viewer", "password": ATTACKER_PASSWORD}));
    old.await.assert_problem(405, None);

    // The attacker invites the address to their own tenant and holds the
    // link the answer shows; it makes no account, whatever password comes with it.
    let link = app.invite(&attacker, VICTIM, "viewer").await;
    let refused = app.accept(&link, ATTACKER_PASSWORD).await;
    refused.assert_problem(401, None);
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(email) = $1")
        .bind(VICTIM)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(accounts, 0, "the admin's link made an account");

    // The victim's admin invites the address; its link goes to it by mail,
    // and that one (not the admin's copy) makes the account.
    let admin = signup_verified(&app, &smtp, "Victim Corp", "admin@victim.test").await;
    let created = app.post("/api/v1/invitations", &token(&admin), json!({"email": VICTIM, "role": "admin"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["mail"], "sent");
    let mail = smtp.wait_for(VICTIM, 2).await.unwrap();
    assert!(mail.subject.contains("Victim Corp"), "{mail:?}");
    assert!(mail.body.contains("http://icehouse.test/invitations/accept#token="), "{mail:?}");
    let mailed_link = mail.token().unwrap();
    assert_ne!(mailed_link, created.body["token"].as_str().unwrap(), "the mailed link is not the one shown");

    // The admin's link tells nothing about which addresses have accounts: a
    // wrong password for the admin's account answers as the victim's address did.
    let probe = app.invite(&attacker, "admin@victim.test", "viewer").await;
    assert_eq!(answer(&app.accept(&probe, ATTACKER_PASSWORD).await), answer(&refused));

    let joined = app.accept(&mailed_link, VICTIM_PASSWORD).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text);
    assert_eq!(
        (joined.body["tenant"]["name"].as_str(), joined.body["role"].as_str()),
        (Some("Victim Corp"), Some("admin"))
    );
    app.accept(&mailed_link, VICTIM_PASSWORD).await.assert_problem(404, None);
    // The account is the owner's alone: the attacker's password opens nothing,
    // and a log-in lands in the victim's tenant, the only one it belongs to.
    login_as(&app, VICTIM, ATTACKER_PASSWORD, None).await.assert_problem(401, None);
    let own = login_as(&app, VICTIM, VICTIM_PASSWORD, None).await;
    assert_eq!(own.body["tenant"]["name"], "Victim Corp", "{}", own.text);
    // The attacker's own invitation still cannot be taken up by them.
    app.accept(&link, ATTACKER_PASSWORD).await.assert_problem(401, None);
}

/// A reset by e-mail ends every session of the account, in every tenant.
#[sqlx::test(migrations = "../migrations")]
async fn a_reset_ends_every_session_of_the_account(pool: PgPool) {
    let smtp = SmtpSink::start().unwrap();
    let app = spawn_with(pool, mail_config(&smtp)).await;
    let first = app.signup("Acme", "ada@acme.test").await;
    let other_owner = token(&app.signup("Bobs", "bob@bobs.test").await);
    let invitation = app.invite(&other_owner, "ada@acme.test", "viewer").await;
    let second = app.accept(&invitation, PASSWORD).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);

    assert_eq!(
        public(&app, "/api/v1/auth/password-reset", json!({"email": "ada@acme.test"})).await.status,
        StatusCode::ACCEPTED
    );
    let reset = smtp.wait_for("ada@acme.test", 2).await.unwrap();
    assert!(reset.subject.contains("Reset"), "{reset:?}");
    assert!(reset.body.contains("http://icehouse.test/password-reset#token="), "{reset:?}");
    let body = json!({"token": reset.token().unwrap(), "new_password": VICTIM_PASSWORD});
    assert_eq!(public(&app, "/api/v1/auth/password-reset/confirm", body.clone()).await.status, StatusCode::NO_CONTENT);
    public(&app, "/api/v1/auth/password-reset/confirm", body).await.assert_problem(404, None);

    for session in [&first, &second.body] {
        app.get("/api/v1/me", &token(session)).await.assert_problem(401, None);
        let refresh = json!({"refresh_token": session["refresh_token"]});
        public(&app, "/api/v1/auth/refresh", refresh).await.assert_problem(401, None);
    }
    login_as(&app, "ada@acme.test", PASSWORD, None).await.assert_problem(401, None);
    let after = login_as(&app, "ada@acme.test", VICTIM_PASSWORD, None).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    // Recorded in both tenants.
    let audit = app.get("/api/v1/audit", &other_owner).await;
    assert!(audit.text.contains("user.password_reset"), "{}", audit.text);
    assert!(app.get("/api/v1/audit", &token(&after.body)).await.text.contains("user.password_reset"));
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

/// Without mail, verified sign-up and reset say so; an invitation's link is
/// shown to the admin and lets only an existing account in.
#[sqlx::test(migrations = "../migrations")]
async fn without_mail_an_invitation_admits_only_existing_accounts(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let owner = token(&app.signup("Acme", "ada@acme.test").await);
    app.signup("Bobs", "bob@bobs.test").await;
    let mut config = test_config();
    config.auth.signup = Some(SignupMode::Verified);
    let app = spawn_with(pool, config).await;
    let body = json!({"tenant_name": "Other", "email": "carol@acme.test", "password": PASSWORD});
    public(&app, "/api/v1/auth/signup", body).await.assert_problem(503, None);
    public(&app, "/api/v1/auth/password-reset", json!({"email": "ada@acme.test"})).await.assert_problem(503, None);

    let created = app.post("/api/v1/invitations", &owner, json!({"email": "carol@acme.test", "role": "viewer"})).await;
    assert_eq!((created.status, created.body["mail"].as_str()), (StatusCode::CREATED, Some("not_configured")));
    assert!(created.body["url"].as_str().unwrap().contains("/invitations/accept#token="), "{}", created.text);
    app.accept(created.body["token"].as_str().unwrap(), PASSWORD).await.assert_problem(401, None);
    let bob = app.invite(&owner, "bob@bobs.test", "viewer").await;
    assert_eq!(app.accept(&bob, PASSWORD).await.status, StatusCode::OK);
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
    let demoted = app.patch(&format!("/api/v1/users/{boss_id}"), &owner, json!({"role": "admin"})).await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text);
    app.accept(&eve, PASSWORD).await.assert_problem(404, None);
    assert!(
        open_addresses(&app, &owner).await.contains(&"frank@acme.test".to_string()),
        "an admin may still invite admins"
    );
    assert_eq!(app.delete(&format!("/api/v1/users/{boss_id}"), &owner).await.status, StatusCode::NO_CONTENT);
    assert!(!open_addresses(&app, &owner).await.contains(&"frank@acme.test".to_string()));
    app.accept(&frank, PASSWORD).await.assert_problem(404, None);

    // An admin cannot quietly replace an invitation as owner.
    let admin = app.member(&owner, "adam@acme.test", "admin").await;
    app.invite(&owner, "grace@acme.test", "owner").await;
    app.post("/api/v1/invitations", &admin, json!({"email": "grace@acme.test", "role": "viewer"}))
        .await
        .assert_problem(403, None);

    // Pages: more invitations than a page holds come page by page.
    for n in 0..55 {
        app.invite(&owner, &format!("page{n}@acme.test"), "viewer").await;
    }
    let first = app.get("/api/v1/invitations?limit=50", &owner).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 50);
    let cursor = first.body["next_cursor"].as_str().expect("a next page").to_string();
    let rest = app.get(&format!("/api/v1/invitations?limit=50&cursor={cursor}"), &owner).await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 56 - 50, "{}", rest.text);
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

/// The addresses of the open invitations.
async fn open_addresses(app: &TestApp, owner: &str) -> Vec<String> {
    let r = app.get("/api/v1/invitations?limit=200", owner).await;
    r.body["items"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap().to_string()).collect()
}
