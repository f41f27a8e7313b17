//! `icehouse-worker [--config FILE]`: claims running pipelines from Postgres
//! and ingests them. Run as many as needed, on as many hosts; they coordinate
//! only through Postgres leases. SIGTERM commits in-flight batches and gives
//! the leases back.

use std::path::PathBuf;

use anyhow::{bail, Context};
use icehouse_workers::config::Config;
use icehouse_workers::secrets::SecretBox;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("icehouse-worker: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("ICEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
    let mut args = std::env::args().skip(1);
    let mut config_file: Option<PathBuf> = std::env::var_os("ICEHOUSE_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config_file = Some(args.next().context("--config needs a file")?.into()),
            other => bail!("unknown argument `{other}`\nusage: icehouse-worker [--config FILE]"),
        }
    }
    let dev_keys = PathBuf::from(".icehouse/dev-keys.toml");
    let config = Config::load(config_file.as_deref(), dev_keys.exists().then_some(dev_keys.as_path()))?;
    let master_key = config.master_key()?;
    let pool = icehouse_workers::connect(&config.database.url, 8).await?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    icehouse_workers::runtime::run_worker(pool, SecretBox::new(&master_key), config.worker, stop_rx).await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
