//! The real `icehouse` and `icehouse-worker` binaries: their command lines,
//! configuration, keys, serving, shutdown.

use std::process::Command;
use std::time::Duration;

use icehouse_e2e::{binary, test_env, Server, TestDb};
use serde_json::{json, Value};

#[test]
fn both_binaries_describe_their_command_line_and_refuse_unknown_arguments() {
    let help = |bin: &str| {
        let out = Command::new(binary(bin)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{bin} --help: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let icehouse = help("icehouse");
    for word in ["serve", "dev", "migrate", "openapi", "--config <FILE>", "--help", "--version"] {
        assert!(icehouse.contains(word), "`icehouse --help` lacks {word}:\n{icehouse}");
    }
    let worker = help("icehouse-worker");
    for word in ["--config <FILE>", "--help", "ICEHOUSE__DATABASE__URL"] {
        assert!(worker.contains(word), "`icehouse-worker --help` lacks {word}:\n{worker}");
    }

    for (bin, args) in [("icehouse", &["serve", "--bogus"][..]), ("icehouse", &["launch"]), ("icehouse-worker", &["x"])]
    {
        let out = Command::new(binary(bin)).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?} is a usage error: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error:") && stderr.contains("Usage:"), "{bin} {args:?}: {stderr}");
    }
}

#[tokio::test]
async fn serve_refuses_to_start_without_keys() {
    let out = Command::new(binary("icehouse"))
        .arg("serve")
        .env("ICEHOUSE__DATABASE__URL", "postgres://nobody@127.0.0.1:1/none")
        .env_remove("ICEHOUSE__AUTH__JWT_SECRET")
        .env_remove("ICEHOUSE__SECRETS__MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.jwt_secret is not set"), "{stderr}");
}

#[tokio::test]
async fn serve_answers_and_stops_on_sigterm() {
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let dir = tempdir();
    let mut server = Server::start("serve", &test_env(&db.url), &dir).unwrap();
    let http = icehouse_e2e::client();
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let signup: Value = http
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"tenant_name": "Acme", "email": "ada@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signup["role"], "owner");
    let resp = http.get(server.url("/api/v1/me")).header("x-request-id", "req-123").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-request-id"], "req-123", "the request id comes back");

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_exit(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "graceful stop: {status:?}");
    db.drop_now().await.unwrap();
}

/// `dev` generates its keys once, privately, and keeps them across restarts:
/// a session from the first run is still valid in the second.
#[tokio::test]
async fn dev_generates_keys_once_and_keeps_them() {
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let dir = tempdir();
    let env: Vec<(String, String)> = vec![
        ("ICEHOUSE__DATABASE__URL".into(), db.url.clone()),
        ("ICEHOUSE__HTTP__BIND".into(), "127.0.0.1:0".into()),
        ("ICEHOUSE_LOG".into(), "warn".into()),
    ];
    let http = icehouse_e2e::client();
    let server = Server::start("dev", &env, &dir).unwrap();
    let keys = dir.join(".icehouse/dev-keys.toml");
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(text.contains("jwt_secret") && text.contains("master_key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let signup: Value = http
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"tenant_name": "Acme", "email": "ada@acme.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["access_token"].as_str().unwrap().to_string();
    drop(server);

    let server = Server::start("dev", &env, &dir).unwrap();
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), text, "keys unchanged");
    let me = http.get(server.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    drop(server);
    db.drop_now().await.unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("icehouse-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `serve` with `env` on top of the usual test settings must refuse to
/// start; its error output.
fn refusal(db: &TestDb, dir: &std::path::Path, set: &[(&str, &str)], unset: &[&str]) -> String {
    let mut env = test_env(&db.url);
    env.retain(|(k, _)| !unset.contains(&k.as_str()) && !set.iter().any(|(s, _)| s == k));
    env.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut child = Command::new(binary("icehouse"))
        .arg("serve")
        .envs(env)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with {set:?} (without {unset:?}); it must refuse");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Row-level security holds every request only if no role skips it and
/// tenant requests run under a tenant login: `serve` refuses a superuser,
/// a system login in the tenant role, a tenant login outside it, and none.
#[tokio::test]
async fn serve_refuses_roles_that_row_level_security_does_not_hold() {
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let dir = tempdir();
    let superuser = icehouse_e2e::swap_login(&db.url, "ICEHOUSE_PG_SUPERUSER_URL");
    let stderr = refusal(&db, &dir, &[("ICEHOUSE__DATABASE__URL", &superuser)], &[]);
    assert!(stderr.contains("database.url: the role `postgres` is a superuser"), "{stderr}");
    let tenant = icehouse_e2e::tenant_url(&db.url);
    let stderr = refusal(&db, &dir, &[("ICEHOUSE__DATABASE__URL", &tenant)], &[]);
    assert!(stderr.contains("is a member of icehouse_tenant, which cannot run system code"), "{stderr}");
    let stderr = refusal(&db, &dir, &[("ICEHOUSE__DATABASE__TENANT_URL", &db.url)], &[]);
    assert!(stderr.contains("database.tenant_url: the role `icehouse` is not a member of icehouse_tenant"), "{stderr}");
    let stderr = refusal(&db, &dir, &[], &["ICEHOUSE__DATABASE__TENANT_URL"]);
    assert!(stderr.contains("database.tenant_url is not set"), "{stderr}");
    db.drop_now().await.unwrap();
}
