//! Item 11 of the security issue: the query service's limits are real. Each
//! query built to run for ever or to take all memory answers 422 within its
//! limit, the server keeps answering meanwhile, and a tenant cannot run more
//! than its share at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

fn limited_config() -> icehouse_backend::config::Config {
    let mut config = test_config();
    config.query.timeout_ms = 3000;
    config.query.memory_limit_mb = 64;
    config.query.max_concurrent_per_tenant = 2;
    config
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_queries_meet_their_limits_and_the_server_keeps_serving(pool: PgPool) {
    let app = spawn_with(pool, limited_config()).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    // What each is, and what its refusal must say: table functions are not
    // offered at all (a table is `namespace.table`), the rest meet the time
    // or memory limit, or the regex engine's own size limit.
    const LIMIT: &[&str] = &["longer than 3 s", "more memory", "more than the 64 MiB"];
    let hostile: [(&str, &str, &[&str]); 11] = [
        ("a huge range", "SELECT count(*) FROM range(1000000000000)", &["namespace"]),
        ("a huge generate_series", "SELECT sum(value) FROM generate_series(1, 1000000000000)", &["namespace"]),
        // Refused before the gigabyte is allocated, not after.
        ("repeat 1e9", "SELECT repeat('x', 1000000000) AS s", &["repeat would make 1000000000 bytes "]),
        ("lpad 1e9", "SELECT lpad('x', 1000000000) AS s", &["lpad would make 4000000000 bytes "]),
        (
            "replace by 100 KB",
            "SELECT replace(repeat('x', 60000), 'x', repeat('y', 60000)) AS s",
            &["replace would make 3600000000 bytes "],
        ),
        ("array_repeat 1e7", "SELECT array_repeat(repeat('x', 1000), 10000000) AS a", &["array_repeat would make"]),
        // A 64 KiB value (the most a constant may make) in two columns of
        // 1,000 rows: a dictionary holds it once, JSON 2,000 times.
        (
            "a result that is larger as JSON",
            "WITH ten(n) AS (VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10)) \
             SELECT arrow_cast(repeat('x', 65536), 'Dictionary(Int32, Utf8)') AS s, \
                    arrow_cast(repeat('y', 65536), 'Dictionary(Int32, Utf8)') AS t \
             FROM ten a CROSS JOIN ten b CROSS JOIN ten c",
            &["the result as JSON needs more than the 64 MiB"],
        ),
        // A constant past its 64 KiB, which a projection would copy into
        // every row of a batch.
        ("a large constant", "SELECT repeat('x', 100000) AS s", &["repeat would make 100000 bytes as a constant"]),
        (
            "a sorted cross join",
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 200000) \
             SELECT a.n * b.n AS v FROM r a CROSS JOIN r b ORDER BY v DESC",
            LIMIT,
        ),
        (
            "a recursive CTE",
            "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
            LIMIT,
        ),
        ("a deep regex", "SELECT regexp_like('a', repeat('(a|', 5000) || 'a' || repeat(')', 5000)) AS m", &["regex"]),
    ];
    for (what, sql, reasons) in hostile {
        // A refused query's work may run on a little (a kernel that does not
        // yield, like one huge allocation, holds its slot until it returns):
        // wait for the tenant's slots before the next, and say how long.
        let waited = Instant::now();
        loop {
            let r = app.post("/api/v1/query", &t, json!({"sql": "SELECT 1 AS one"})).await;
            if r.status != StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                break;
            }
            assert!(waited.elapsed() < Duration::from_secs(20), "{what}: the slots stayed taken");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("{what}: slots free after {:?}", waited.elapsed());
        let (http, url, bearer) = (app.http.clone(), app.url("/api/v1/query"), t.clone());
        let started = Instant::now();
        let query = tokio::spawn(async move {
            let r = http.post(url).bearer_auth(bearer).json(&json!({"sql": sql})).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        });
        // While it runs, the server answers at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
        assert!(asked.elapsed() < Duration::from_secs(1), "{what}: /healthz took {:?}", asked.elapsed());
        let (status, text) = query.await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {text}");
        assert!(text.contains("\"field\":\"sql\""), "{what}: {text}");
        assert!(reasons.iter().any(|r| text.contains(r)), "{what}: {text}");
        // Its limit is 3 s, plus the time to notice.
        assert!(started.elapsed() < Duration::from_secs(8), "{what} took {:?}", started.elapsed());
        println!("{what}: 422 after {:?}: {text:.160}", started.elapsed());
    }
    // The cancelled ones stopped: a small query has both slots and the
    // query threads to itself.
    let asked = Instant::now();
    let one = || app.post("/api/v1/query", &t, json!({"sql": "SELECT 1 AS one"}));
    loop {
        let (a, b) = tokio::join!(one(), one());
        if (a.status, b.status) == (StatusCode::OK, StatusCode::OK) {
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(20), "the slots stayed taken: {} {}", a.text, b.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("both slots free after {:?}", asked.elapsed());
    let asked = Instant::now();
    assert_eq!(one().await.status, StatusCode::OK);
    assert!(asked.elapsed() < Duration::from_secs(1), "SELECT 1 took {:?}", asked.elapsed());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_runs_at_most_its_share_of_queries_at_once(pool: PgPool) {
    let app = spawn_with(pool, limited_config()).await;
    let a = token(&app.signup("Acme", "ada@acme.test").await);
    let b = token(&app.signup("Bobs", "bob@bobs.test").await);
    let slow =
        json!({"sql": "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"});
    let mut running = Vec::new();
    for _ in 0..2 {
        let (http, url, bearer, body) = (app.http.clone(), app.url("/api/v1/query"), a.clone(), slow.clone());
        running.push(tokio::spawn(async move {
            http.post(url).bearer_auth(bearer).json(&body).send().await.unwrap().status()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = app.post("/api/v1/query", &a, json!({"sql": "SELECT 1 AS one"})).await;
    third.assert_problem(429, None);
    // Another tenant is not held up by them.
    let other = app.post("/api/v1/query", &b, json!({"sql": "SELECT 1 AS one"})).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    for r in running {
        assert_eq!(r.await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Their places are given back.
    assert_eq!(app.post("/api/v1/query", &a, json!({"sql": "SELECT 1 AS one"})).await.status, StatusCode::OK);
}
