//! Old rows are pruned, recent ones kept: read notifications past 30 days,
//! status minutes past two hours, refresh tokens that can no longer be used,
//! audit entries past the retention, invitations, reset links and sign-up
//! requests past use.

use icehouse_backend::db::prune::{prune, Pruned};
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn old_rows_go_and_recent_ones_stay(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let s = app.signup("Acme", "ada@acme.test").await;
    let t = token(&s);
    let (_, _, pid) = seed(&app, &t).await;
    // A viewer cannot read notifications, so does not hold them back.
    app.member(&t, "viewer@acme.test", "viewer").await;
    let tenant = s["tenant"]["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let user = s["user"]["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let pid = pid.parse::<uuid::Uuid>().unwrap();

    let mut tx = icehouse_backend::db::begin_system(&pool).await.unwrap();
    // Notifications: an old one everyone read, a new read one, an old unread one.
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, pipeline_id, kind, message, created_at) VALUES
            (1, $1, $2, 'pipeline_failing', 'old, read', now() - interval '40 days'),
            (2, $1, $2, 'pipeline_failing', 'new, read', now() - interval '1 day'),
            (3, $1, $2, 'pipeline_failing', 'old, unread', now() - interval '40 days')",
    )
    .bind(tenant)
    .bind(pid)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO notification_reads (tenant_id, user_id, read_up_to) VALUES ($1, $2, 2)")
        .bind(tenant)
        .bind(user)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO pipeline_minutes (pipeline_id, tenant_id, minute, rows) VALUES
            ($1, $2, date_trunc('minute', now()) - interval '3 hours', 1),
            ($1, $2, date_trunc('minute', now()) - interval '5 minutes', 1)",
    )
    .bind(pid)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, token_hash, expires_at, used_at, revoked_at) VALUES
            (gen_random_uuid(), $1, $2, gen_random_uuid(), 'expired', now() - interval '1 minute', NULL, NULL),
            (gen_random_uuid(), $1, $2, gen_random_uuid(), 'revoked', now() + interval '1 day', NULL, now() - interval '2 days'),
            (gen_random_uuid(), $1, $2, gen_random_uuid(), 'used', now() + interval '1 day', now(), NULL)",
    )
    .bind(tenant)
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, at, action, resource_type, resource_id, request_id)
         VALUES (gen_random_uuid(), $1, now() - interval '400 days', 'old', 'x', 'x', 'r')",
    )
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    // Links: one of each kind past use, one of each still good (the viewer's accepted invitation is recent).
    sqlx::query(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at) VALUES
            (gen_random_uuid(), $1, 'old@acme.test', 'viewer', 'old', $2, now() - interval '40 days', now() - interval '33 days'),
            (gen_random_uuid(), $1, 'new@acme.test', 'viewer', 'new', $2, now(), now() + interval '7 days')",
    )
    .bind(tenant)
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, token_hash, expires_at) VALUES
            (gen_random_uuid(), $1, 'old', now() - interval '2 days'), (gen_random_uuid(), $1, 'new', now() + interval '1 hour')",
    )
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO signup_requests (id, email, tenant_name, password_hash, token_hash, expires_at) VALUES
            (gen_random_uuid(), 'a@b.test', 'A', 'x', 'old', now() - interval '1 minute'),
            (gen_random_uuid(), 'c@d.test', 'C', 'x', 'new', now() + interval '1 hour')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let audit_before = app.count("audit_log").await;

    let pruned = prune(&pool, 365).await.unwrap();
    assert_eq!(pruned, Pruned { notifications: 1, minutes: 1, refresh_tokens: 2, audit: 1, links: 3 });

    let mut tx = icehouse_backend::db::begin_system(&pool).await.unwrap();
    let left: Vec<String> =
        sqlx::query_scalar("SELECT message FROM notifications ORDER BY id").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(left, ["new, read", "old, unread"]);
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens WHERE length(token_hash) < 10")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(hashes, [b"used".to_vec()], "a used token stays until it expires (reuse detection)");
    tx.commit().await.unwrap();
    assert_eq!(app.count("audit_log").await, audit_before - 1);
    // The session that signed up still refreshes.
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(serde_json::json!({"refresh_token": s["refresh_token"]})),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.text);
    assert_eq!(prune(&pool, 365).await.unwrap(), Pruned::default());
}
