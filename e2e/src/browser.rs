//! A headless Chromium driven over WebDriver, for the browser tests.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port
//! (in its own process group, so the Chromium it launches dies with it) and
//! opens a session on `/usr/bin/chromium` with a fresh profile. The helpers
//! poll rather than sleep, and a helper that times out saves a screenshot and
//! names the selector it waited for. Screenshots go to
//! `<target dir>/e2e-screenshots/`, where the target dir is `$CARGO_TARGET_DIR`
//! or the one the running test binary was built into.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the helpers wait for an element by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A Chromium session. Call [`Browser::close`] at the end of a test; on a
/// panic, drop kills chromedriver and its browser by process group.
pub struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
    shots: PathBuf,
    /// Prefix of every screenshot name, so tests running in parallel don't overwrite each other's.
    prefix: String,
    pub timeout: Duration,
}

/// `<target dir>/e2e-screenshots`: `$CARGO_TARGET_DIR`, else the target dir
/// the running executable lives in (`target/<profile>/deps/<test>`), else `./target`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let mut dir = exe.parent()?.to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        dir.pop(); // the profile dir
        Some(dir)
    });
    target.unwrap_or_else(|| PathBuf::from("target")).join("e2e-screenshots")
}

/// `goog/cdp/execute`: a Chrome DevTools Protocol command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &reqwest::Url, session_id: Option<&str>) -> Result<reqwest::Url, UrlParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"cmd": self.cmd, "params": self.params}).to_string()))
    }
}

/// `url::ParseError`, which reqwest does not re-export by name.
type UrlParseError = <reqwest::Url as std::str::FromStr>::Err;

impl Browser {
    /// Starts chromedriver and a headless Chromium session. `name` prefixes
    /// this session's screenshots (use the test's name).
    pub async fn start(name: &str) -> anyhow::Result<Browser> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            anyhow::ensure!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/test.sh (ensure_chromium) or apt-get install -y chromium chromium-driver"
            );
        }
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).with_context(|| format!("creating {}", shots.display()))?;
        let port = crate::free_port();
        let profile = std::env::temp_dir().join(format!("icehouse-chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile)?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromedriver")?;
        // Owns the children from here on, so an error below still cleans up.
        let mut guard = DriverGuard { driver: Some(driver), profile: Some(profile.clone()) };

        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
            tokio::time::sleep(POLL).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1200",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .context("opening a Chromium session through chromedriver")?;
        let driver = guard.driver.take().expect("driver");
        guard.profile = None;
        Ok(Browser { client, driver, profile, shots, prefix: name.to_string(), timeout: DEFAULT_TIMEOUT })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        let client = self.client.clone();
        let result = client.close().await;
        drop(self);
        result.context("closing the Chromium session")
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await.with_context(|| format!("opening {url}"))
    }

    /// Saves a PNG of the viewport as `<prefix>-<name>.png` and prints its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await.context("taking a screenshot")?;
        let file = format!("{}-{}.png", sanitize(&self.prefix), sanitize(name));
        let path = self.shots.join(file);
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// The first element matching `selector`, polled for up to [`Browser::timeout`].
    pub async fn wait_for(&self, selector: &str) -> anyhow::Result<Element> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(el) = self.find_now(selector).await? {
                return Ok(el);
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(selector, "to appear", None).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no element matches `selector` (e.g. a spinner is gone).
    pub async fn wait_gone(&self, selector: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout;
        while self.find_now(selector).await?.is_some() {
            if Instant::now() >= deadline {
                return Err(self.timed_out(selector, "to disappear", None).await);
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Waits until the text of `selector` satisfies `pred`; returns that text.
    pub async fn wait_for_text(
        &self,
        selector: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        self.wait_for_text_within(selector, what, self.timeout, pred).await
    }

    /// [`Browser::wait_for_text`] with its own timeout.
    pub async fn wait_for_text_within(
        &self,
        selector: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(el) = self.find_now(selector).await? {
                // The element may be replaced between find and read (a re-render).
                if let Ok(text) = el.text().await {
                    if pred(&text) {
                        return Ok(text);
                    }
                    last = Some(text);
                }
            }
            if Instant::now() >= deadline {
                let seen = match &last {
                    Some(t) => format!("; its text was {t:?}"),
                    None => "; it never appeared".to_string(),
                };
                return Err(self.timed_out(selector, &format!("to show {what}{seen}"), Some(timeout)).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of the input matching `selector` with `text`.
    pub async fn fill(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let el = self.wait_for(selector).await?;
        el.clear().await.with_context(|| format!("clearing {selector}"))?;
        el.send_keys(text).await.with_context(|| format!("typing into {selector}"))?;
        Ok(())
    }

    /// Picks the option with `value` in the `<select>` matching `selector`.
    pub async fn select(&self, selector: &str, value: &str) -> anyhow::Result<()> {
        let el = self.wait_for(selector).await?;
        el.select_by_value(value).await.with_context(|| format!("selecting {value:?} in {selector}"))
    }

    /// Clicks the element matching `selector` once it is there and enabled.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(el) = self.find_now(selector).await? {
                if el.is_enabled().await.unwrap_or(false) && el.click().await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(selector, "to be clickable", None).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the element matching `selector` (waiting for it).
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        let el = self.wait_for(selector).await?;
        el.text().await.with_context(|| format!("reading the text of {selector}"))
    }

    /// The `value` of the input matching `selector`.
    pub async fn value(&self, selector: &str) -> anyhow::Result<String> {
        let el = self.wait_for(selector).await?;
        Ok(el.prop("value").await.with_context(|| format!("reading the value of {selector}"))?.unwrap_or_default())
    }

    /// Is an element matching `selector` on the page right now (no waiting)?
    pub async fn exists(&self, selector: &str) -> anyhow::Result<bool> {
        Ok(self.find_now(selector).await?.is_some())
    }

    /// How many elements match `selector` right now.
    pub async fn count(&self, selector: &str) -> anyhow::Result<usize> {
        Ok(self.client.find_all(Locator::Css(selector)).await.with_context(|| format!("finding {selector}"))?.len())
    }

    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client.execute(script, args).await.context("running a script in the page")
    }

    /// Loads `url` and measures, in the page's own clock, the milliseconds
    /// from navigation start until an element matching `selector` is first
    /// in the DOM. A script installed before the page's own (CDP
    /// `Page.addScriptToEvaluateOnNewDocument`) watches the DOM, so the
    /// figure does not include WebDriver's polling.
    pub async fn load_to_interactive(&self, url: &str, selector: &str) -> anyhow::Result<LoadTiming> {
        let source = format!(
            "(() => {{ const sel = {sel}; const seen = () => {{ if (window.__icehouseInteractiveAt === undefined && \
             document.querySelector(sel)) {{ window.__icehouseInteractiveAt = performance.now(); }} \
             return window.__icehouseInteractiveAt !== undefined; }}; \
             const obs = new MutationObserver(() => {{ if (seen()) obs.disconnect(); }}); \
             obs.observe(document, {{ childList: true, subtree: true, attributes: true }}); }})();",
            sel = serde_json::to_string(selector)?
        );
        let added = self
            .client
            .issue_cmd(Cdp { cmd: "Page.addScriptToEvaluateOnNewDocument", params: json!({"source": source}) })
            .await
            .context("installing the timing script (CDP through chromedriver)")?;
        self.goto(url).await?;
        self.wait_for(selector).await?;
        let t = self
            .execute(
                "const nav = performance.getEntriesByType('navigation')[0];
                 return {interactive: window.__icehouseInteractiveAt ?? null,
                         dom_content_loaded: nav ? nav.domContentLoadedEventEnd : null,
                         load: nav ? nav.loadEventEnd : null};",
                vec![],
            )
            .await?;
        if let Some(id) = added.get("identifier").cloned() {
            let _ = self
                .client
                .issue_cmd(Cdp { cmd: "Page.removeScriptToEvaluateOnNewDocument", params: json!({"identifier": id}) })
                .await;
        }
        let ms = |k: &str| t[k].as_f64();
        Ok(LoadTiming {
            interactive_ms: ms("interactive").with_context(|| format!("the page never recorded {selector}: {t}"))?,
            dom_content_loaded_ms: ms("dom_content_loaded").unwrap_or(f64::NAN),
            load_ms: ms("load").unwrap_or(f64::NAN),
        })
    }

    async fn find_now(&self, selector: &str) -> anyhow::Result<Option<Element>> {
        match self.client.find(Locator::Css(selector)).await {
            Ok(el) => Ok(Some(el)),
            Err(e) if e.is_no_such_element() => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("looking for {selector}"))),
        }
    }

    async fn timed_out(&self, selector: &str, what: &str, timeout: Option<Duration>) -> anyhow::Error {
        let timeout = timeout.unwrap_or(self.timeout);
        let shot = match self.screenshot(&format!("timeout-{selector}")).await {
            Ok(path) => format!("screenshot: {}", path.display()),
            Err(e) => format!("no screenshot: {e:#}"),
        };
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        anyhow::anyhow!("timed out after {timeout:?} waiting for `{selector}` {what} (page {url}; {shot})")
    }
}

/// Timings of one page load, in ms since navigation start.
#[derive(Clone, Copy, Debug)]
pub struct LoadTiming {
    /// Until the app's first interactive element was in the DOM.
    pub interactive_ms: f64,
    pub dom_content_loaded_ms: f64,
    pub load_ms: f64,
}

fn sanitize(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    s.trim_matches('_').to_string()
}

/// Kills chromedriver's process group (it and the Chromium it started) and
/// removes the profile; used by [`Browser`]'s drop and while starting.
struct DriverGuard {
    driver: Option<Child>,
    profile: Option<PathBuf>,
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(driver) = &mut self.driver {
            kill_group(driver);
        }
        if let Some(profile) = &self.profile {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

fn kill_group(child: &mut Child) {
    // The child leads its own group (process_group(0)): its pid is the group id.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        // Chromium may still be writing to the profile for a moment.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
