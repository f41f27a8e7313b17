//! End-to-end harness: fresh databases and the real `icehouse` binary,
//! started as a child process on port 0, killed on drop.
//!
//! The binaries are looked up next to the running test or bench executable
//! (the same target directory and profile), so `cargo build --release
//! --workspace --bins` must have run first; `scripts/test.sh` does that.

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
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str()).await?;
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

/// Keys for a server under test (fixed: tests need no secrecy).
pub fn test_env(db_url: &str) -> Vec<(String, String)> {
    vec![
        ("ICEHOUSE__DATABASE__URL".into(), db_url.into()),
        ("ICEHOUSE__HTTP__BIND".into(), "127.0.0.1:0".into()),
        ("ICEHOUSE__AUTH__JWT_SECRET".into(), "ZTJlLXRlc3Qta2V5LWUyZS10ZXN0LWtleS1lMmUtdGVzdC1rZXk=".into()),
        ("ICEHOUSE__SECRETS__MASTER_KEY".into(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()),
        ("ICEHOUSE_LOG".into(), "warn".into()),
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
