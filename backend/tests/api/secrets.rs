use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

const KAFKA_PASSWORD: &str = "kafka-pa55word-NEVER-SHOWN";
const NEW_KAFKA_PASSWORD: &str = "rotated-kafka-pa55word-NEVER-SHOWN";
const S3_SECRET: &str = "s3-secret-key-NEVER-SHOWN";

#[sqlx::test(migrations = "../migrations")]
async fn stored_secrets_never_leave_the_server(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let mut bodies = Vec::new();

    let c = app
        .post(
            "/api/v1/connections",
            &t,
            json!({"name": "prod", "bootstrap_servers": ["k1:9093", "k2:9093"], "security_protocol": "SASL_SSL",
                   "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "icehouse", "sasl_password": KAFKA_PASSWORD}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    assert_eq!(c.body["sasl_password_set"], true);
    assert!(c.body.get("sasl_password").is_none());
    let cid = c.body["id"].as_str().unwrap().to_string();
    bodies.push(c.text);

    let d = app
        .post(
            "/api/v1/destinations",
            &t,
            json!({"name": "s3", "warehouse_uri": "s3://lake-bucket/icehouse/", "s3_endpoint": "http://127.0.0.1:9000",
                   "s3_region": "eu-west-1", "s3_access_key_id": "AKIAEXAMPLE", "s3_secret_access_key": S3_SECRET}),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
    assert_eq!(d.body["s3_secret_access_key_set"], true);
    assert_eq!(d.body["warehouse_uri"], "s3://lake-bucket/icehouse");
    let did = d.body["id"].as_str().unwrap().to_string();
    bodies.push(d.text);

    // Renaming keeps the password; a new one replaces it; leaving SASL drops it.
    let u = app.patch(&format!("/api/v1/connections/{cid}"), &t, json!({"name": "prod-eu"})).await;
    assert_eq!(u.body["sasl_password_set"], true, "{}", u.text);
    bodies.push(u.text);
    let u = app.patch(&format!("/api/v1/connections/{cid}"), &t, json!({"sasl_password": NEW_KAFKA_PASSWORD})).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    bodies.push(u.text);
    let u = app.patch(&format!("/api/v1/destinations/{did}"), &t, json!({"s3_region": "us-east-1"})).await;
    assert_eq!(u.body["s3_secret_access_key_set"], true, "{}", u.text);
    bodies.push(u.text);

    for path in [
        "/api/v1/connections".to_string(),
        format!("/api/v1/connections/{cid}"),
        "/api/v1/destinations".to_string(),
        format!("/api/v1/destinations/{did}"),
        "/api/v1/audit".to_string(),
        "/api/v1/openapi.json".to_string(),
    ] {
        bodies.push(app.get(&path, &t).await.text);
    }
    let audit = app.get("/api/v1/audit", &t).await;
    assert!(audit.body["items"].as_array().unwrap().len() >= 5);
    for body in &bodies {
        for secret in [KAFKA_PASSWORD, NEW_KAFKA_PASSWORD, S3_SECRET] {
            assert!(!body.contains(secret), "a response contains a secret: {body}");
        }
    }

    // At rest they are ciphertext, and the stored password is the rotated one.
    let mut tx = icehouse_backend::db::begin_system(&pool).await.unwrap();
    let enc: Vec<u8> =
        sqlx::query_scalar("SELECT sasl_password_enc FROM connections").fetch_one(&mut *tx).await.unwrap();
    let s3: Vec<u8> =
        sqlx::query_scalar("SELECT s3_secret_access_key_enc FROM destinations").fetch_one(&mut *tx).await.unwrap();
    let dump: String = sqlx::query_scalar(
        "SELECT (SELECT string_agg(c::text, ' ') FROM connections c) || (SELECT string_agg(d::text, ' ') FROM destinations d)
                || (SELECT string_agg(a::text, ' ') FROM audit_log a)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(!String::from_utf8_lossy(&enc).contains("NEVER-SHOWN"));
    assert!(!String::from_utf8_lossy(&s3).contains("NEVER-SHOWN"));
    assert!(!dump.contains("NEVER-SHOWN"));
    let sb = icehouse_backend::crypto::SecretBox::new(&[9u8; 32]);
    assert_eq!(sb.open(&enc).unwrap(), NEW_KAFKA_PASSWORD);
    assert_eq!(sb.open(&s3).unwrap(), S3_SECRET);

    // Leaving SASL clears the credentials.
    let u = app.patch(&format!("/api/v1/connections/{cid}"), &t, json!({"security_protocol": "SSL"})).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    assert_eq!(u.body["sasl_password_set"], false);
    assert_eq!(u.body["sasl_username"], serde_json::Value::Null);
}

/// An editor cannot aim the stored SASL password at brokers of their own:
/// changing where or how it is sent needs the password again.
#[sqlx::test(migrations = "../migrations")]
async fn a_stored_password_is_not_redirected(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app
        .post(
            "/api/v1/connections",
            &t,
            json!({"name": "prod", "bootstrap_servers": ["k1:9093"], "security_protocol": "SASL_SSL",
                   "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "icehouse", "sasl_password": KAFKA_PASSWORD}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let path = format!("/api/v1/connections/{}", c.body["id"].as_str().unwrap());
    for change in [
        json!({"bootstrap_servers": ["attacker.example:9093"]}),
        json!({"bootstrap_servers": ["k1:9093", "attacker.example:9093"]}),
        json!({"security_protocol": "SASL_PLAINTEXT"}),
        json!({"sasl_mechanism": "PLAIN"}),
    ] {
        let u = app.patch(&path, &t, change.clone()).await;
        assert_eq!(u.status, StatusCode::UNPROCESSABLE_ENTITY, "{change}: {}", u.text);
        assert_eq!(u.body["errors"][0]["field"], "sasl_password", "{change}: {}", u.text);
    }
    let unchanged = app.get(&path, &t).await;
    assert_eq!(unchanged.body["bootstrap_servers"], json!(["k1:9093"]));
    assert_eq!(unchanged.body["security_protocol"], "SASL_SSL");
    // The same brokers, or a new password with the new brokers, are fine.
    let u = app.patch(&path, &t, json!({"bootstrap_servers": ["k1:9093"], "sasl_username": "other"})).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    let u = app.patch(&path, &t, json!({"bootstrap_servers": ["k2:9093"], "sasl_password": NEW_KAFKA_PASSWORD})).await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.text);
    assert_eq!(u.body["bootstrap_servers"], json!(["k2:9093"]));
}
