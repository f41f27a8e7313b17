//! The served OpenAPI spec is true: schemathesis (pinned in scripts/lib.sh)
//! generates valid and invalid requests from `/api/v1/openapi.json` against
//! the real `icehouse` process and a real Postgres, and checks that no answer
//! is a 5xx, every status is one the operation documents, and every body has
//! the documented content type and schema.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use icehouse_e2e::{test_env, Api, Server, TestDb};
use serde_json::json;

/// The whole run must stay well inside the CI budget on 2 busy cores; past
/// this the run is stopped and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(170);

/// The schemathesis CLI installed beside `$ICEHOUSE_PYTHON` (the venv of
/// scripts/lib.sh's `ensure_python_readers`).
fn schemathesis_cli() -> PathBuf {
    let python = std::env::var("ICEHOUSE_PYTHON")
        .expect("ICEHOUSE_PYTHON is not set: scripts/test.sh installs schemathesis into a venv and sets it");
    let cli = PathBuf::from(python).with_file_name("schemathesis");
    assert!(cli.exists(), "{} is missing: run scripts/test.sh, which installs schemathesis", cli.display());
    cli
}

/// How much of what to generate.
struct Run<'a> {
    token: &'a str,
    /// `positive`, `negative` or `all`.
    mode: &'a str,
    phases: &'a str,
    /// Per operation, for the examples and fuzzing phases.
    max_examples: u32,
}

/// Runs schemathesis against `server`: its report, as the error when it found anything.
async fn run_schemathesis(server: &Server, run: Run<'_>) -> Result<String, String> {
    let cli = schemathesis_cli();
    // Anything it writes stays out of the source tree.
    let scratch = std::env::temp_dir().join(format!("icehouse-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut command = tokio::process::Command::new(cli);
    command
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--url", &server.base_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--header", &format!("Authorization: Bearer {}", run.token)])
        .args(["--mode", run.mode, "--phases", run.phases])
        .args(["--max-examples", &run.max_examples.to_string()])
        // Reproducible: the same cases in the same order on every run (the
        // deterministic mode uses no seed and no example database).
        .args(["--generation-deterministic", "--workers", "1"])
        .args(["--request-timeout", "20", "--no-color"])
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_LIMIT:?}"))
        .expect("running schemathesis");
    let _ = std::fs::remove_dir_all(&scratch);
    let report = format!(
        "schemathesis exited with {} after {:.1?}\n{}\n{}",
        output.status,
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

#[tokio::test]
async fn schemathesis_finds_every_answer_documented() {
    let db = TestDb::create("icehouse_e2e_spec").await.unwrap();
    let mut env = test_env(&db.url);
    // The connection tests and topic sampling connect to whatever brokers a
    // generated body names (random hosts and ports, none of them a broker):
    // a short probe keeps each such call to about half a second.
    env.push(("ICEHOUSE__KAFKA__PROBE_TIMEOUT_MS".into(), "500".into()));
    // Mail, so that password reset and invitations run their whole way
    // (without it, reset answers 503, which schemathesis counts as a fault).
    let smtp = icehouse_e2e::mail::SmtpSink::start().unwrap();
    env.extend([
        ("ICEHOUSE__MAIL__SMTP_HOST".to_string(), "127.0.0.1".to_string()),
        ("ICEHOUSE__MAIL__SMTP_PORT".to_string(), smtp.port.to_string()),
        ("ICEHOUSE__MAIL__TLS".to_string(), "none".to_string()),
    ]);
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    // The run's bearer is the owner's access token: a JWT that no API call
    // revokes. `/auth/logout` ends only the session whose refresh token is
    // in its body, and the run never has that one (nor any other way to end
    // this login), so every operation, logout included, can be tested.
    let owner = Api::signup(&server.base_url).await.unwrap();

    // The examples, coverage (boundary and invalid values of every parameter
    // and field) and fuzzing phases test each operation on its own. The
    // stateful phase is left out: it feeds ids from earlier answers into
    // later calls (GET /users → PATCH /users/{user_id}), so it could demote
    // or remove the run's own user and make what later calls answer depend
    // on the order of the run.
    let owner_run = run_schemathesis(
        &server,
        Run { token: &owner.token, mode: "all", phases: "examples,coverage,fuzzing", max_examples: 12 },
    )
    .await;

    // A viewer may read but not change anything: every operation that needs
    // more documents its 403. An API token with the viewer role, positive
    // data only (an invalid request is refused before the role is checked).
    let viewer = owner.post("/api/v1/api-tokens", json!({"name": "schemathesis viewer", "role": "viewer"})).await;
    let viewer_token = viewer.unwrap()["secret"].as_str().unwrap().to_string();
    let viewer_run = run_schemathesis(
        &server,
        Run { token: &viewer_token, mode: "positive", phases: "examples,fuzzing", max_examples: 10 },
    )
    .await;

    drop(server);
    db.drop_now().await.unwrap();
    let owner_report = owner_run.unwrap_or_else(|report| panic!("as the owner:\n{report}"));
    let viewer_report = viewer_run.unwrap_or_else(|report| panic!("as a viewer:\n{report}"));
    println!("{owner_report}\n{viewer_report}");
}
