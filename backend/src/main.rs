//! `icehouse`: the control-plane binary (`icehouse --help`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use icehouse_backend::config::{ensure_dev_keys, Config};
use icehouse_backend::crypto::SecretBox;
use icehouse_backend::scheduler;
use icehouse_backend::state::AppState;
use tracing_subscriber::EnvFilter;

/// Icehouse: Kafka topics into Apache Iceberg tables, exactly once.
///
/// Settings come from the defaults, then the --config file, then
/// ICEHOUSE__SECTION__KEY environment variables (ICEHOUSE__DATABASE__URL,
/// ICEHOUSE__AUTH__JWT_SECRET, ICEHOUSE__SECRETS__MASTER_KEY, …; every
/// setting is in docs/operations.md).
#[derive(Parser)]
#[command(name = "icehouse", version)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, value_name = "FILE", env = "ICEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the web UI and the scheduler; the keys must be configured.
    Serve,
    /// The same on one machine with local defaults and an in-process worker;
    /// generates its keys into .icehouse/dev-keys.toml on first run.
    Dev,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli).await {
        eprintln!("icehouse: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    match cli.command {
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&icehouse_backend::openapi())?);
            Ok(())
        }
        Command::Migrate => {
            init_tracing();
            let config = Config::load(file, None)?;
            icehouse_backend::connect(&config.database.url, 2).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            init_tracing();
            serve(Config::load(file, None)?, false).await
        }
        Command::Dev => {
            init_tracing();
            let keys = ensure_dev_keys(&PathBuf::from(".icehouse/dev-keys.toml"))?;
            let mut config = Config::load(file, Some(&keys))?;
            // One process does everything on one machine.
            config.worker.in_process = true;
            config.destinations.for_dev();
            config.ui.for_dev();
            config.auth.for_dev();
            if config.egress.allow.is_none() {
                tracing::info!("dev: connections may go to loopback and private networks (egress.allow)");
            }
            config.egress.for_dev();
            if config.auth.signup_mode() == icehouse_backend::config::SignupMode::Open {
                tracing::info!(
                    "dev: sign-up is open (no e-mail confirmation; it tells whether an address has an account)"
                );
            }
            serve(config, true).await
        }
    }
}

async fn serve(mut config: Config, dev: bool) -> anyhow::Result<()> {
    config.jwt_secret()?;
    let master_key = config.master_key()?;
    // Log-ins, token lookups and invitations: a quarter of the tenant pool's size.
    let system = icehouse_backend::connect(&config.database.url, (config.database.max_connections / 4).max(4)).await?;
    let pool = match &config.database.tenant_url {
        Some(url) => {
            let pool = icehouse_workers::pool(url, config.database.max_connections)
                .await
                .context("connecting to Postgres (database.tenant_url)")?;
            icehouse_workers::check_role(&pool, true).await?;
            pool
        }
        None if dev => {
            tracing::info!("dev: no database.tenant_url; tenant requests use database.url's login");
            system.clone()
        }
        None => anyhow::bail!(
            "database.tenant_url is not set: requests made for a tenant need a login of their own, a member of \
             the role icehouse_tenant (docs/operations.md)"
        ),
    };
    let listener = icehouse_backend::serve::bind(config.http.bind, config.http.listen_backlog)
        .with_context(|| format!("binding {}", config.http.bind))?;
    let addr = listener.local_addr()?;
    if config.http.public_url.is_none() && config.mail.smtp_host.is_some() && addr.ip().is_unspecified() {
        tracing::warn!(%addr, "links in mails will name an unspecified address; set http.public_url");
    }
    config.http.public_url.get_or_insert_with(|| format!("http://{addr}"));
    if config.mail.smtp_host.is_none() {
        tracing::warn!(
            "no mail.smtp_host: invitation links are only shown to the admin who makes them, \
             and password reset (and verified sign-up) are unavailable"
        );
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);

    let dead_after = std::time::Duration::from_secs(config.worker.lease_ttl_secs * 3);
    // The scheduler and the in-process worker have pools of their own: a
    // burst of API requests (or a slow bucket behind them) cannot starve
    // leases and commits, nor they the API.
    let scheduler = tokio::spawn(scheduler::run(
        icehouse_workers::pool(&config.database.url, 4).await?,
        config.database.url.clone(),
        dead_after,
        config.audit.retention_days,
        stop_rx.clone(),
    ));
    let worker = match config.worker.in_process {
        false => None,
        true => {
            let pool = icehouse_workers::pool(&config.database.url, config.database.max_connections).await?;
            let (secrets, wc) = (SecretBox::new(&master_key), config.worker.clone());
            let egress = config.egress.policy(&config.database)?;
            Some(tokio::spawn(icehouse_workers::runtime::run_worker(
                pool,
                secrets,
                wc,
                config.dead_letter,
                egress,
                stop_rx.clone(),
            )))
        }
    };

    let config_http = config.http.clone();
    let app = icehouse_backend::router(AppState::new(system, pool, config)?);
    println!(
        "Icehouse is running at http://{addr}  (API: http://{addr}/api/v1, spec: http://{addr}/api/v1/openapi.json)"
    );
    let http = config_http;
    icehouse_backend::serve::serve(listener, app, &http, async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    })
    .await
    .context("serving HTTP")?;
    // In-flight batches are committed before the leases are given back.
    if let Some(worker) = worker {
        worker.await??;
    }
    scheduler.await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_env("ICEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")))
        .init();
}
