//! `icehouse-worker`: claims running pipelines from Postgres and ingests
//! them. Run as many as needed, on as many hosts; they coordinate only
//! through Postgres leases. SIGTERM commits in-flight batches and gives the
//! leases back.

use std::path::PathBuf;

use clap::Parser;
use icehouse_workers::config::Config;
use icehouse_workers::secrets::SecretBox;
use tracing_subscriber::EnvFilter;

/// An Icehouse ingestion worker: claims slices of running pipelines from
/// Postgres and writes them to their Iceberg tables exactly once.
///
/// Settings come from the defaults, then the --config file, then
/// ICEHOUSE__SECTION__KEY environment variables (ICEHOUSE__DATABASE__URL,
/// ICEHOUSE__SECRETS__MASTER_KEY, ICEHOUSE__WORKER__MAX_PIPELINES, …).
#[derive(Parser)]
#[command(name = "icehouse-worker", version)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE", env = "ICEHOUSE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli).await {
        eprintln!("icehouse-worker: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("ICEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
    let dev_keys = PathBuf::from(".icehouse/dev-keys.toml");
    let config = Config::load(cli.config.as_deref(), dev_keys.exists().then_some(dev_keys.as_path()))?;
    let master_key = config.secrets.master_key()?;
    let pool = icehouse_workers::connect(&config.database.url, config.database.max_connections).await?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let egress = config.egress.policy(&config.database)?;
    icehouse_workers::runtime::run_worker(
        pool,
        SecretBox::new(&master_key),
        config.worker,
        config.dead_letter,
        egress,
        stop_rx,
    )
    .await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
