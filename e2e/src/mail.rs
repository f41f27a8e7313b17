//! A real SMTP server for the mail tests: aiosmtpd from the test venv
//! (`e2e/python/smtp_sink.py`) on a free loopback port, keeping what it
//! receives in a file this side reads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    file: PathBuf,
}

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

impl ReceivedMail {
    /// The token of the link in the body (`…#token=<token>`).
    pub fn token(&self) -> Option<String> {
        let rest = &self.body[self.body.find("#token=")? + "#token=".len()..];
        Some(rest.split_whitespace().next()?.to_string())
    }
}

impl SmtpSink {
    pub fn start() -> anyhow::Result<SmtpSink> {
        let python = std::env::var("ICEHOUSE_PYTHON")
            .context("ICEHOUSE_PYTHON is not set: scripts/test.sh installs aiosmtpd into a venv and sets it")?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/smtp_sink.py");
        let port = crate::free_port();
        let file = std::env::temp_dir().join(format!("icehouse-mail-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the SMTP sink")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the SMTP sink did not start (said {line:?})");
        }
        Ok(SmtpSink { child, port, file })
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(text) = std::fs::read_to_string(&self.file) else { return vec![] };
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| ReceivedMail {
                to: v["to"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect(),
                subject: v["subject"].as_str().unwrap_or_default().to_string(),
                body: v["body"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Messages to `to` so far.
    pub fn to(&self, to: &str) -> Vec<ReceivedMail> {
        self.messages().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits (up to 10 s) for the `n`th message (1-based) to `to`.
    pub async fn wait_for(&self, to: &str, n: usize) -> anyhow::Result<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = self.to(to).into_iter().nth(n - 1) {
                return Ok(m);
            }
            if Instant::now() > deadline {
                bail!("no mail number {n} to {to}; received: {:?}", self.messages());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}
