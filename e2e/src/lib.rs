//! End-to-end harness: fresh databases and the real `icehouse` binary,
//! started as a child process on port 0, killed on drop.
//!
//! The binaries are looked up next to the running test or bench executable
//! (the same target directory and profile), so `cargo build --release
//! --workspace --bins` must have run first; `scripts/test.sh` does that.

pub mod browser;
pub mod demo;
pub mod mail;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::{Connection, Executor, PgConnection};

/// A database of its own, dropped on [`TestDb::drop_now`].
pub struct TestDb {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates an empty database next to the one `DATABASE_URL` names.
    pub async fn create(prefix: &str) -> anyhow::Result<TestDb> {
        let admin_url = std::env::var("DATABASE_URL").context("DATABASE_URL is not set (scripts/test.sh sets it)")?;
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url).await.context("connecting to DATABASE_URL")?;
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => bail!("DATABASE_URL has no database name"),
        };
        Ok(TestDb { url, name, admin_url })
    }

    pub async fn drop_now(self) -> anyhow::Result<()> {
        // The servers' tenant-login sessions are another role's, which only a
        // superuser may end; without one (a DATABASE_URL of one's own), the
        // admin login tries and waits for them.
        let admin = match std::env::var("ICEHOUSE_PG_SUPERUSER_URL") {
            Ok(_) => swap_login(&self.admin_url, "ICEHOUSE_PG_SUPERUSER_URL"),
            Err(_) => self.admin_url.clone(),
        };
        let mut conn = PgConnection::connect(&admin).await?;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A connection of a process just killed that is still authenticating
        // has no role yet, and a non-superuser may not terminate it: wait for
        // it to go away.
        for _ in 0..20 {
            match conn.execute(drop.as_str()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("pg_signal_backend") => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        conn.execute(drop.as_str()).await?;
        Ok(())
    }
}

/// A binary of this workspace, built with the same profile as the caller.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> or target/<profile>/<bench>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built: run `cargo build --release --workspace --bins` first", path.display());
    path
}

/// A running `icehouse` process.
pub struct Server {
    pub child: Child,
    pub base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `db_url` (a test's database) under the tenant login of
/// ICEHOUSE_TENANT_DATABASE_URL, which scripts/lib.sh exports.
pub fn tenant_url(db_url: &str) -> String {
    swap_login(db_url, "ICEHOUSE_TENANT_DATABASE_URL")
}

/// `db_url` with the login (and host) of the URL in the variable `var`.
pub fn swap_login(db_url: &str, var: &str) -> String {
    let login = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (scripts/lib.sh exports it)"));
    let db = db_url.rsplit_once('/').map(|(_, db)| db).expect("a database URL names its database");
    // postgres://postgres@localhost/icehouse?host=/socket/dir: the query may hold slashes too.
    let (path, query) = login.split_once('?').map_or((login.as_str(), None), |(p, q)| (p, Some(q)));
    let base = path.rsplit_once('/').map(|(base, _)| base).unwrap_or_else(|| panic!("{var} names no database"));
    match query {
        Some(query) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}

/// Keys for a server under test (fixed: tests need no secrecy).
pub fn test_env(db_url: &str) -> Vec<(String, String)> {
    vec![
        ("ICEHOUSE__DATABASE__URL".into(), db_url.into()),
        ("ICEHOUSE__DATABASE__TENANT_URL".into(), tenant_url(db_url)),
        ("ICEHOUSE__HTTP__BIND".into(), "127.0.0.1:0".into()),
        ("ICEHOUSE__AUTH__JWT_SECRET".into(), "ZTJlLXRlc3Qta2V5LWUyZS10ZXN0LWtleS1lMmUtdGVzdC1rZXk=".into()),
        ("ICEHOUSE__SECRETS__MASTER_KEY".into(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()),
        ("ICEHOUSE_LOG".into(), "warn".into()),
        // Tests make their tenants at once (`serve` would confirm the address by e-mail).
        ("ICEHOUSE__AUTH__SIGNUP".into(), "open".into()),
        // Tests keep their warehouses in the temporary folder; `serve` refuses
        // `file://` warehouses anywhere else.
        ("ICEHOUSE__DESTINATIONS__LOCAL_ROOT".into(), std::env::temp_dir().display().to_string()),
        // Test brokers and buckets listen on loopback, which `serve` refuses
        // to connect to; the egress tests narrow this again.
        ("ICEHOUSE__EGRESS__ALLOW".into(), "127.0.0.1/32".into()),
    ]
}

impl Server {
    /// Starts `icehouse <command>` and waits for the line with its URL.
    pub fn start(command: &str, env: &[(String, String)], cwd: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(binary("icehouse"))
            .arg(command)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting icehouse")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Icehouse is running at ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base_url) => Ok(Server { child, base_url }),
            Err(_) => {
                let status = child.try_wait()?;
                let _ = child.kill();
                bail!("icehouse {command} did not report its URL (exit status: {status:?})")
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// A tansu broker (Kafka protocol) on a free loopback port, killed on drop.
pub struct Broker {
    pub child: Child,
    pub addr: String,
    pub storage: String,
    /// A storage directory of the broker's own, removed with it.
    own_dir: Option<PathBuf>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The tansu binary installed by the scripts (`$ICEHOUSE_CACHE_DIR/tools/bin`), or from PATH.
pub fn tansu_binary() -> PathBuf {
    let from_cache = std::env::var_os("ICEHOUSE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/icehouse")))
        .map(|d| d.join("tools/bin/tansu"));
    if let Some(p) = from_cache.filter(|p| p.exists()) {
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("tansu")).find(|p| p.exists()))
        .expect("the tansu broker is not installed: run scripts/test.sh, which installs it")
}

impl Broker {
    /// Starts tansu on SQLite storage of its own: the broker for every test
    /// that checks what lands in a table. (tansu 0.6.0's memory engine
    /// answers a fetch that starts inside a record batch without the rest
    /// of that batch, and repeats later batches in the same response, so a
    /// consumer that resumes mid-stream after a kill or a re-cut, as real
    /// Kafka consumers do, would lose and repeat messages on it.)
    pub async fn start() -> anyhow::Result<Broker> {
        let dir = std::env::temp_dir().join(format!("icehouse-tansu-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut broker = Self::start_durable(free_port(), &dir).await?;
        broker.own_dir = Some(dir);
        Ok(broker)
    }

    /// Starts tansu with in-memory storage: fast and lost on restart, for
    /// tests that only sample, list or probe (see [`Broker::start`]).
    pub async fn start_memory() -> anyhow::Result<Broker> {
        Self::start_on(free_port(), "memory://tansu/".to_string(), &std::env::temp_dir()).await
    }

    /// Starts tansu on `port` with SQLite storage in `dir` (survives kill -9 and restart).
    pub async fn start_durable(port: u16, dir: &Path) -> anyhow::Result<Broker> {
        // tansu resolves the SQLite path against its working directory.
        Self::start_on(port, "sqlite://tansu.db".to_string(), dir).await
    }

    /// Starts tansu on `port` with `storage`, in the working directory `dir`.
    pub async fn start_on(port: u16, storage: String, dir: &Path) -> anyhow::Result<Broker> {
        let addr = format!("127.0.0.1:{port}");
        Self::start_advertising(&addr, &addr, storage, dir).await
    }

    /// Starts tansu listening on `addr` and telling clients that it is at
    /// `advertised` (what a cluster's metadata says, whatever the client dialled).
    pub async fn start_advertising(
        addr: &str,
        advertised: &str,
        storage: String,
        dir: &Path,
    ) -> anyhow::Result<Broker> {
        let (url, advertised_url) = (format!("tcp://{addr}"), format!("tcp://{advertised}"));
        let addr = addr.to_string();
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised_url])
            .args(["--storage-engine", &storage])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting tansu")?;
        let broker = Broker { child, addr, storage, own_dir: None };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&broker.addr).await.is_err() {
            anyhow::ensure!(std::time::Instant::now() < deadline, "tansu did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(broker)
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{signal} tansu");
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &self.addr).create()?;
        for r in admin
            .create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
            .await?
        {
            r.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code:?}"))?;
        }
        Ok(())
    }
}

/// Reads a table with an independent reader (`pyiceberg` or `duckdb`) through
/// `e2e/python/read_table.py`; one JSON object per row.
pub fn read_table(
    engine: &str,
    pg_url: &str,
    catalog: &str,
    warehouse: &str,
    table: &str,
    columns: &[&str],
) -> anyhow::Result<Vec<serde_json::Value>> {
    read_table_with(engine, pg_url, catalog, warehouse, table, columns, &[])
}

/// [`read_table`] with catalog properties for the reader (`s3.endpoint`,
/// `s3.access-key-id`, … for an S3 warehouse).
pub fn read_table_with(
    engine: &str,
    pg_url: &str,
    catalog: &str,
    warehouse: &str,
    table: &str,
    columns: &[&str],
    properties: &[(&str, &str)],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let python = std::env::var("ICEHOUSE_PYTHON")
        .context("ICEHOUSE_PYTHON is not set: scripts/test.sh installs PyIceberg and DuckDB into a venv and sets it")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/read_table.py");
    let out = Command::new(python)
        .arg(script)
        .args([
            "--engine",
            engine,
            "--pg-url",
            pg_url,
            "--catalog",
            catalog,
            "--warehouse",
            warehouse,
            "--table",
            table,
        ])
        .args(["--columns", &columns.join(",")])
        .args(properties.iter().flat_map(|(k, v)| ["--property".to_string(), format!("{k}={v}")]))
        .output()?;
    if !out.status.success() {
        bail!("{engine} could not read {table}: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8(out.stdout)?.lines().map(|l| serde_json::from_str(l).map_err(anyhow::Error::from)).collect()
}

/// A logged-in API client.
/// An HTTP client that never reuses a connection the server may be closing:
/// the server drops a kept-alive connection that sends nothing for
/// `http.header_read_timeout_secs` (10 s), so idle ones are let go sooner.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().expect("a reqwest client")
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn signup(base: &str) -> anyhow::Result<Api> {
        Self::signup_as(base, "e2e@e2e.test").await
    }

    /// A tenant of its own for `email` (a second server on the same database
    /// needs another), named after it.
    pub async fn signup_as(base: &str, email: &str) -> anyhow::Result<Api> {
        let http = client();
        let tenant = if email == "e2e@e2e.test" { "E2E".to_string() } else { format!("E2E {email}") };
        let r: serde_json::Value = http
            .post(format!("{base}/api/v1/auth/signup"))
            .json(&serde_json::json!({"tenant_name": tenant, "email": email, "password": "e2e password 123"}))
            .send()
            .await?
            .json()
            .await?;
        let token = r["access_token"].as_str().context("signup failed")?.to_string();
        Ok(Api { http, base: base.to_string(), token })
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    /// Any call, for checking refusals: the status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }
}

/// An `icehouse-worker` process, killed on drop.
pub struct Worker {
    pub child: Child,
    env: Vec<(String, String)>,
}

impl Worker {
    pub fn start(env: &[(String, String)]) -> anyhow::Result<Worker> {
        let child = Command::new(binary("icehouse-worker"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting icehouse-worker")?;
        Ok(Worker { child, env: env.to_vec() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{signal} {}", self.pid());
    }

    /// SIGKILL, reap, and start a fresh process with the same settings.
    pub fn kill9_and_restart(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        *self = Worker::start(&self.env)?;
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection that sees every tenant's rows, for checks of the work tables.
async fn system_conn(db_url: &str) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect(db_url).await?;
    sqlx::query("SELECT set_config('icehouse.system', 'on', false)").execute(&mut conn).await?;
    Ok(conn)
}

/// The OS pid and epoch of the worker holding partition 0 of the pipeline
/// (the slice that has it), if a live lease does.
pub async fn lease_holder(db_url: &str, pipeline_id: &str) -> anyhow::Result<Option<(u32, i64)>> {
    let mut conn = system_conn(db_url).await?;
    let row: Option<(i32, i64)> = sqlx::query_as(
        "SELECT w.pid, s.epoch FROM pipeline_slices s JOIN workers w ON w.id = s.worker_id
         WHERE s.pipeline_id = $1::uuid AND s.lease_expires_at > now() AND (s.partitions IS NULL OR 0 = ANY(s.partitions))",
    )
    .bind(pipeline_id)
    .fetch_optional(&mut conn)
    .await?;
    Ok(row.map(|(pid, epoch)| (pid as u32, epoch)))
}

/// One slice of a pipeline as its lease row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceLease {
    pub slice: i32,
    /// `None`: every partition of the topic.
    pub partitions: Option<Vec<i32>>,
    /// The OS pid of the worker holding a live lease on it.
    pub holder: Option<u32>,
    pub epoch: i64,
}

/// The pipeline's slices in slice order.
pub async fn slices(db_url: &str, pipeline_id: &str) -> anyhow::Result<Vec<SliceLease>> {
    let mut conn = system_conn(db_url).await?;
    type Row = (i32, Option<Vec<i32>>, Option<i32>, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.slice, s.partitions, CASE WHEN s.lease_expires_at > now() THEN w.pid END, s.epoch
         FROM pipeline_slices s LEFT JOIN workers w ON w.id = s.worker_id
         WHERE s.pipeline_id = $1::uuid ORDER BY s.slice",
    )
    .bind(pipeline_id)
    .fetch_all(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(slice, partitions, pid, epoch)| SliceLease { slice, partitions, holder: pid.map(|p| p as u32), epoch })
        .collect())
}
