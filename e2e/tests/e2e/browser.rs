//! The web UI in a real browser (headless Chromium through chromedriver)
//! against the real stack: `icehouse serve` with its in-process worker and
//! the built UI, Postgres, and a tansu broker. The element ids are the stable
//! ones listed at the top of `frontend/src/lib.rs`.
//!
//! Every step saves a screenshot under `<target dir>/e2e-screenshots/` (the
//! paths are printed; run with `--nocapture` to see them). The UI must be
//! built first: `scripts/build-frontend.sh` (scripts/test.sh does it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use icehouse_e2e::browser::Browser;
use icehouse_e2e::demo::DemoStream;
use icehouse_e2e::{test_env, Api, Broker, Server, TestDb};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
const MESSAGES: u64 = 500;

/// Postgres, tansu (SQLite storage: its watermarks are right) and the server.
struct Stack {
    server: Server,
    broker: Broker,
    db: Option<TestDb>,
    dir: PathBuf,
}

impl Stack {
    async fn start() -> Stack {
        let dir = std::env::temp_dir().join(format!("icehouse-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("broker")).unwrap();
        let broker = Broker::start_durable(icehouse_e2e::free_port(), &dir.join("broker")).await.unwrap();
        let db = TestDb::create("icehouse_browser").await.unwrap();
        let mut env = test_env(&db.url);
        env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
        // What the wizard offers, as scripts/dev.sh sets it for the demo.
        env.push(("ICEHOUSE__UI__DEFAULT_BOOTSTRAP_SERVERS".into(), broker.addr.clone()));
        env.push(("ICEHOUSE__UI__DEFAULT_WAREHOUSE_URI".into(), warehouse_uri(&dir)));
        let server = Server::start("serve", &env, &repo_root()).unwrap();
        Stack { server, broker, db: Some(db), dir }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn warehouse_uri(&self) -> String {
        warehouse_uri(&self.dir)
    }

    async fn stop(mut self) {
        if let Some(db) = self.db.take() {
            // The server holds connections: stop it first.
            let _ = self.server.child.kill();
            let _ = self.server.child.wait();
            db.drop_now().await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn warehouse_uri(dir: &Path) -> String {
    format!("file://{}", dir.join("warehouse").display())
}

/// Waits until the input `selector` holds `want` (a value the page fills in by itself).
async fn wait_for_value(b: &Browser, selector: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = b.value(selector).await.unwrap();
        if value == want {
            return;
        }
        assert!(Instant::now() < deadline, "{selector} holds {value:?}, not the offered {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server serves the UI from the repository's `frontend/dist`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `n` demo store sales (none malformed) into a new topic.
async fn produce_sales(broker: &Broker, topic: &str, n: u64) {
    broker.create_topic(topic, 3).await.unwrap();
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.addr).set("linger.ms", "5").create().unwrap();
    let stream = DemoStream { seed: 7, start: "2026-11-20T09:00:00Z".parse().unwrap(), spacing_ms: 250, bad_every: 0 };
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let (key, value, _) = stream.message(i);
            let producer = producer.clone();
            let topic = topic.to_string();
            async move {
                let record = FutureRecord::to(&topic).key(&key).payload(&value);
                producer.send(record, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
            }
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.unwrap();
    }
}

/// An attribute selector: topic names may hold `.`, which `#id` would read as a class.
fn id(value: &str) -> String {
    format!("[id=\"{value}\"]")
}

/// Asserts that the field error `error` sits right by the input `input`: in the
/// same field group, and just below it (not at the top of the form).
async fn assert_error_by_field(b: &Browser, input: &str, error: &str) {
    let geometry = b
        .execute(
            "const [i, e] = [document.querySelector(arguments[0]), document.querySelector(arguments[1])];
             if (!i || !e) return null;
             const [ri, re] = [i.getBoundingClientRect(), e.getBoundingClientRect()];
             return {same_group: i.parentElement.contains(e), gap: re.top - ri.bottom,
                     left_delta: Math.abs(re.left - ri.left), visible: re.height > 0};",
            vec![json!(input), json!(error)],
        )
        .await
        .unwrap();
    assert!(geometry.is_object(), "{input} or {error} is not on the page");
    assert_eq!(geometry["same_group"], true, "{error} is not in {input}'s field group: {geometry}");
    assert_eq!(geometry["visible"], true, "{error} is not visible: {geometry}");
    let gap = geometry["gap"].as_f64().unwrap();
    assert!((0.0..80.0).contains(&gap), "{error} is not just below {input}: {geometry}");
    assert!(geometry["left_delta"].as_f64().unwrap() < 40.0, "{error} is not aligned with {input}: {geometry}");
}

/// The mapping table as (column name, type) pairs, in order.
async fn mapping_rows(b: &Browser) -> Vec<(String, String)> {
    let rows = b
        .execute(
            "return [...document.querySelectorAll('#mapping-table tbody tr')].map(r =>
                [r.querySelector('.col-name').value, r.querySelector('.col-type').value]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(rows).unwrap()
}

/// Wizard step 1 with a new connection: test it, pick the topic, go on.
async fn wizard_connect(b: &Browser, stack: &Stack, bootstrap: &str, topic: &str) {
    // The server offers its broker (ui.default_bootstrap_servers) before anything is typed.
    wait_for_value(b, "#conn-bootstrap", &stack.broker.addr).await;
    b.fill("#conn-bootstrap", bootstrap).await.unwrap();
    b.click("#conn-test").await.unwrap();
    b.wait_for("#conn-test-result").await.unwrap();
    b.click(&id(&format!("topic-{topic}"))).await.unwrap();
    b.wait_for_text("#selected-topic", &format!("the topic {topic}"), |t| t.contains(topic)).await.unwrap();
}

#[tokio::test]
async fn a_new_user_creates_a_pipeline_in_the_wizard_and_queries_its_table() {
    let stack = Stack::start().await;
    let topic = "store_sales";
    produce_sales(&stack.broker, topic, MESSAGES).await;
    let b = Browser::start("wizard").await.unwrap();

    // Page load to interactive: navigation start until the sign-up button is in the DOM.
    let timing = b.load_to_interactive(&stack.url("/signup"), "#signup-submit").await.unwrap();
    println!(
        "page load to interactive (/signup, #signup-submit present): {:.0} ms (DOMContentLoaded {:.0} ms, load {:.0} ms)",
        timing.interactive_ms, timing.dom_content_loaded_ms, timing.load_ms
    );
    b.screenshot("01-signup").await.unwrap();

    b.fill("#signup-tenant", "Coffee Co").await.unwrap();
    b.fill("#signup-email", "ada@coffee.test").await.unwrap();
    b.fill("#signup-password", PASSWORD).await.unwrap();
    b.click("#signup-submit").await.unwrap();
    b.wait_for("#nav-new-pipeline").await.unwrap();
    b.wait_for("#pipelines-empty").await.unwrap();
    b.screenshot("02-no-pipelines-yet").await.unwrap();

    // 1. Connect.
    b.click("#create-first-pipeline").await.unwrap();
    b.wait_for("#wizard-step-1.current").await.unwrap();
    wizard_connect(&b, &stack, &stack.broker.addr, topic).await;
    let tested = b.text("#conn-test-result").await.unwrap();
    assert!(tested.contains(&format!("1 broker: {}", stack.broker.addr)) && tested.ends_with("1 topic."), "{tested:?}");
    b.screenshot("03-connected").await.unwrap();
    b.click("#wizard-next").await.unwrap();

    // 2. Destination and table.
    b.wait_for("#wizard-step-2.current").await.unwrap();
    // Offered by the server (ui.default_warehouse_uri): nothing to type.
    wait_for_value(&b, "#dest-uri", &stack.warehouse_uri()).await;
    b.fill("#namespace", "shop").await.unwrap();
    b.fill("#table-name", "sales").await.unwrap();
    b.fill("#pipeline-name", "store sales").await.unwrap();
    b.screenshot("04-destination").await.unwrap();
    b.click("#wizard-next").await.unwrap();

    // 3. Mapping: the suggestion from the sampled messages, with their types.
    b.wait_for("#wizard-step-3.current").await.unwrap();
    b.wait_for("#mapping-row-0").await.unwrap();
    b.wait_for("#sample-messages").await.unwrap();
    let suggested = mapping_rows(&b).await;
    let expected: Vec<(String, String)> = [
        ("sale_id", "int"),
        ("store", "string"),
        ("region", "string"),
        ("country", "string"),
        ("city", "string"),
        ("product", "string"),
        ("quantity", "int"),
        ("unit_price", "double"),
        ("currency", "string"),
        ("sold_at", "timestamptz"),
        ("customer_id", "string"),
        ("customer_name", "string"),
        ("customer_tier", "string"),
        ("customer_member_since", "date"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect();
    assert_eq!(suggested, expected);
    assert_eq!(b.text("#mapping-misfits").await.unwrap(), "All 100 sampled messages fit the columns.");
    b.screenshot("05-suggested-mapping").await.unwrap();
    b.fill("#mapping-1-name", "store_code").await.unwrap();
    b.screenshot("06-column-renamed").await.unwrap();
    b.click("#wizard-next").await.unwrap();

    // 4. Review and create.
    b.wait_for("#wizard-step-4.current").await.unwrap();
    let review = b.text("#review-columns").await.unwrap();
    assert!(review.contains("store_code"), "{review}");
    assert_eq!(b.text("#review-table").await.unwrap(), "shop.sales");
    b.screenshot("07-review").await.unwrap();
    b.click("#create-pipeline").await.unwrap();

    // Running, with every row counted, within 10 s of creating it.
    let created = Instant::now();
    let state = b
        .wait_for_text_within("#pipeline-state", "running", Duration::from_secs(10), |t| t == "running")
        .await
        .unwrap();
    let rows = b
        .wait_for_text_within("#pipeline-rows", "500", Duration::from_secs(10).saturating_sub(created.elapsed()), |t| {
            t == "500"
        })
        .await
        .unwrap();
    println!("pipeline {state} with {rows} rows {:.1} s after create", created.elapsed().as_secs_f64());
    assert_eq!(b.text("#pipeline-dead-letter-count").await.unwrap(), "0");
    b.wait_for("#dead-letters-empty").await.unwrap();
    b.screenshot("08-pipeline-running").await.unwrap();

    // The table, with the renamed column, and SQL over it.
    b.click("#pipeline-table").await.unwrap();
    b.wait_for_text("#table-title", "shop.sales", |t| t == "shop.sales").await.unwrap();
    b.wait_for("#table-schema .schema-name").await.unwrap();
    let columns = b
        .execute("return [...document.querySelectorAll('#table-schema .schema-name')].map(c => c.textContent);", vec![])
        .await
        .unwrap();
    let names: Vec<String> = serde_json::from_value(columns).unwrap();
    let mut want: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    want[1] = "store_code".into();
    assert_eq!(names, want);
    b.fill("#sql-input", "SELECT count(*) FROM shop.sales").await.unwrap();
    b.click("#sql-run").await.unwrap();
    let result = b.wait_for_text("#sql-result-table tbody", "a count", |t| !t.trim().is_empty()).await.unwrap();
    assert_eq!(result.trim(), "500", "SELECT count(*) answered {result:?}");
    assert_eq!(b.text("#sql-meta").await.unwrap().split(" · ").next(), Some("1 row"));
    b.screenshot("09-sql-count").await.unwrap();

    b.close().await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn bad_input_shows_a_clear_message_next_to_its_field() {
    let stack = Stack::start().await;
    let topic = "orders";
    produce_sales(&stack.broker, topic, 20).await;
    let b = Browser::start("errors").await.unwrap();

    // A password that is too short: the message is by the password field.
    b.goto(&stack.url("/signup")).await.unwrap();
    b.fill("#signup-tenant", "Coffee Co").await.unwrap();
    b.fill("#signup-email", "grace@coffee.test").await.unwrap();
    b.fill("#signup-password", "short").await.unwrap();
    b.click("#signup-submit").await.unwrap();
    let message = b.text(".field-error[data-field=password]").await.unwrap();
    assert!(message.contains("12"), "the message should say how long a password must be: {message:?}");
    assert_error_by_field(&b, "#signup-password", ".field-error[data-field=password]").await;
    assert_eq!(b.count(".field-error").await.unwrap(), 1, "only the password is wrong");
    b.screenshot("01-short-password").await.unwrap();
    b.fill("#signup-password", PASSWORD).await.unwrap();
    b.click("#signup-submit").await.unwrap();
    b.wait_for("#nav-new-pipeline").await.unwrap();

    // A bootstrap server where nothing listens: the message is by that field.
    let closed = icehouse_e2e::free_port();
    b.click("#nav-new-pipeline").await.unwrap();
    wait_for_value(&b, "#conn-bootstrap", &stack.broker.addr).await;
    b.fill("#conn-bootstrap", &format!("127.0.0.1:{closed}")).await.unwrap();
    b.click("#conn-test").await.unwrap();
    let failure = b.text("#conn-test-error").await.unwrap();
    assert!(failure.contains(&format!("127.0.0.1:{closed}")), "the message should name the server: {failure:?}");
    assert_error_by_field(&b, "#conn-bootstrap", "#conn-test-error").await;
    assert!(!b.exists("#conn-test-result").await.unwrap());
    b.screenshot("02-closed-bootstrap-port").await.unwrap();

    // A table name already taken (by a pipeline made through the API): the
    // create fails, and the wizard shows the message by the table-name field.
    let api = Api {
        http: icehouse_e2e::client(),
        base: stack.server.base_url.clone(),
        token: login(&stack, "grace@coffee.test").await,
    };
    let c = api
        .post("/api/v1/connections", json!({"name": "local", "bootstrap_servers": [stack.broker.addr]}))
        .await
        .unwrap();
    let d = api
        .post("/api/v1/destinations", json!({"name": "lake", "warehouse_uri": stack.warehouse_uri()}))
        .await
        .unwrap();
    api.post(
        "/api/v1/pipelines",
        json!({"name": "orders", "connection_id": c["id"], "destination_id": d["id"], "topic": topic,
               "table_name": "orders", "mapping": {"columns": [{"name": "sale_id", "type": "long", "path": "$.sale_id"}]}}),
    )
    .await
    .unwrap();
    b.goto(&stack.url("/pipelines/new")).await.unwrap();
    b.select("#conn-existing", c["id"].as_str().unwrap()).await.unwrap();
    b.click("#conn-test").await.unwrap();
    b.click(&id(&format!("topic-{topic}"))).await.unwrap();
    b.click("#wizard-next").await.unwrap();
    b.wait_for("#wizard-step-2.current").await.unwrap();
    b.select("#dest-select", d["id"].as_str().unwrap()).await.unwrap();
    b.fill("#table-name", "orders").await.unwrap();
    b.fill("#pipeline-name", "orders again").await.unwrap();
    b.click("#wizard-next").await.unwrap();
    b.wait_for("#mapping-row-0").await.unwrap();
    b.click("#wizard-next").await.unwrap();
    b.click("#create-pipeline").await.unwrap();
    b.wait_for("#wizard-step-2.current").await.unwrap();
    let taken = b.text(".field-error[data-field=table_name]").await.unwrap();
    assert!(taken.contains("another pipeline already writes to this table"), "{taken:?}");
    assert_error_by_field(&b, "#table-name", ".field-error[data-field=table_name]").await;
    b.screenshot("03-duplicate-table-name").await.unwrap();

    // A warehouse this server does not allow (`serve` keeps file:// inside
    // its local root and lends no AWS credentials): each refusal is shown by
    // its field, and the S3 settings appear for an s3:// warehouse.
    b.select("#dest-select", "new").await.unwrap();
    b.fill("#dest-name", "elsewhere").await.unwrap();
    b.fill("#dest-uri", "file:///srv/lake").await.unwrap();
    b.fill("#table-name", "orders_elsewhere").await.unwrap();
    create_from_destination(&b).await;
    let outside = b.text(".field-error[data-field=warehouse_uri]").await.unwrap();
    assert!(outside.contains("must be inside"), "{outside:?}");
    assert_error_by_field(&b, "#dest-uri", ".field-error[data-field=warehouse_uri]").await;
    b.fill("#dest-uri", "s3://lake-bucket/icehouse").await.unwrap();
    b.wait_for("#s3-key-id").await.unwrap();
    create_from_destination(&b).await;
    let keyless = b.text(".field-error[data-field=s3_access_key_id]").await.unwrap();
    assert!(keyless.contains("access key id"), "{keyless:?}");
    assert_error_by_field(&b, "#s3-key-id", ".field-error[data-field=s3_access_key_id]").await;
    b.screenshot("04-s3-warehouse-without-keys").await.unwrap();

    b.close().await.unwrap();
    stack.stop().await;
}

/// From the wizard's destination step on, through Review to "Create", which
/// fails back to the destination step.
async fn create_from_destination(b: &Browser) {
    b.click("#wizard-next").await.unwrap();
    b.wait_for("#mapping-row-0").await.unwrap();
    b.click("#wizard-next").await.unwrap();
    b.click("#create-pipeline").await.unwrap();
    b.wait_for("#wizard-step-2.current").await.unwrap();
}

async fn login(stack: &Stack, email: &str) -> String {
    let r: Value = icehouse_e2e::client()
        .post(stack.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap_or_else(|| panic!("login failed: {r}")).to_string()
}

#[tokio::test]
async fn a_viewer_sees_no_create_buttons_and_the_api_refuses_its_writes() {
    let stack = Stack::start().await;
    let owner = Api::signup(&stack.server.base_url).await.unwrap();
    let invitation =
        owner.post("/api/v1/invitations", json!({"email": "vic@coffee.test", "role": "viewer"})).await.unwrap();
    let invite_token = invitation["token"].as_str().unwrap_or_else(|| panic!("no token: {invitation}"));
    let b = Browser::start("viewer").await.unwrap();

    // A new address: accepting the invitation creates the account and logs in.
    b.goto(&stack.url(&format!("/invitations/accept#token={invite_token}"))).await.unwrap();
    b.fill("#accept-password", PASSWORD).await.unwrap();
    b.click("#accept-submit").await.unwrap();
    let who = b.wait_for_text("#whoami", "the viewer", |t| t.contains("vic@coffee.test")).await.unwrap();
    assert!(who.contains("viewer"), "{who}");
    b.wait_for("#pipelines-empty").await.unwrap();
    b.screenshot("01-pipelines").await.unwrap();
    for create in ["#nav-new-pipeline", "#new-pipeline", "#create-first-pipeline", "#nav-notifications"] {
        assert!(!b.exists(create).await.unwrap(), "a viewer sees {create}");
    }
    b.click("#nav-settings").await.unwrap();
    b.wait_for("#members-table").await.unwrap();
    b.screenshot("02-settings").await.unwrap();
    for create in ["#invite-submit", "#token-create", ".member-remove"] {
        assert!(!b.exists(create).await.unwrap(), "a viewer sees {create}");
    }

    // The buttons are not the only wall: the API itself says no.
    let token = login(&stack, "vic@coffee.test").await;
    let r = icehouse_e2e::client()
        .post(stack.url("/api/v1/connections"))
        .bearer_auth(&token)
        .json(&json!({"name": "sneaky", "bootstrap_servers": [stack.broker.addr]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(owner.get("/api/v1/connections").await.unwrap()["items"], json!([]));

    b.close().await.unwrap();
    stack.stop().await;
}
