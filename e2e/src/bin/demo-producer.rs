//! Writes the demo's store-sales events to a Kafka topic, a few per second,
//! until stopped (SIGINT/SIGTERM) or `--count` messages are out. Started by
//! `scripts/dev.sh` against its local tansu broker.
//!
//! Usage: demo-producer [--bootstrap HOST:PORT] [--topic NAME] [--partitions N]
//!                      [--rate PER_SEC] [--count N] [--seed N] [--bad-every N]
//!                      [--start RFC3339] [--resume]
//!
//! The topic is created when missing. Message `i` depends only on the seed,
//! `i` and `--start` (default: now), see `icehouse_e2e::demo`. `--resume`
//! starts `i` at the number of messages the topic already holds, so a
//! restarted demo goes on with new sale ids instead of repeating old ones.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use icehouse_e2e::demo::{DemoStream, Kind, DEMO_TOPIC};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const USAGE: &str = "usage: demo-producer [--bootstrap HOST:PORT] [--topic NAME] [--partitions N] [--rate PER_SEC] \
                     [--count N] [--seed N] [--bad-every N] [--start RFC3339] [--resume]";

struct Args {
    bootstrap: String,
    topic: String,
    partitions: i32,
    rate: f64,
    count: Option<u64>,
    seed: u64,
    bad_every: u64,
    start: Option<DateTime<Utc>>,
    resume: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        bootstrap: "127.0.0.1:19092".into(),
        topic: DEMO_TOPIC.into(),
        partitions: 3,
        rate: 4.0,
        count: None,
        seed: 42,
        bad_every: 40,
        start: None,
        resume: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--resume" {
            args.resume = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = || format!("{flag}: invalid value {value:?}");
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value,
            "--topic" => args.topic = value,
            "--partitions" => args.partitions = value.parse().ok().filter(|n| *n > 0).with_context(bad)?,
            "--rate" => args.rate = value.parse().ok().filter(|r: &f64| *r > 0.0 && r.is_finite()).with_context(bad)?,
            "--count" => args.count = Some(value.parse().with_context(bad)?),
            "--seed" => args.seed = value.parse().with_context(bad)?,
            "--bad-every" => args.bad_every = value.parse().with_context(bad)?,
            "--start" => args.start = Some(value.parse().with_context(bad)?),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// Creates the topic unless it exists; retries while the broker comes up.
async fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match admin.create_topics(&[new], &opts).await {
            Ok(results) => {
                return match results.into_iter().next() {
                    Some(Ok(_)) => {
                        eprintln!("demo-producer: created topic {topic} ({partitions} partitions)");
                        Ok(())
                    }
                    Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(()),
                    Some(Err((_, code))) => bail!("creating topic {topic} on {bootstrap}: {code}"),
                };
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("demo-producer: broker {bootstrap} not ready ({e}), retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => bail!("creating topic {topic} on {bootstrap}: {e}"),
        }
    }
}

/// How many messages the topic holds: the sum of its partitions' high watermarks.
fn messages_in_topic(bootstrap: &str, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).context("reading the topic's metadata")?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    let mut total = 0;
    for p in 0..partitions as i32 {
        let (_, high) = consumer.fetch_watermarks(topic, p, timeout).context("reading watermarks")?;
        total += high.max(0) as u64;
    }
    Ok(total)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    ensure_topic(&args.bootstrap, &args.topic, args.partitions).await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("creating the Kafka producer")?;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let spacing_ms = interval.as_millis().max(1) as u64;
    let first = if args.resume { messages_in_topic(&args.bootstrap, &args.topic)? } else { 0 };
    // By default message `first` is sold now, and the ones after it in real time.
    let start = args.start.unwrap_or_else(|| Utc::now() - chrono::Duration::milliseconds((first * spacing_ms) as i64));
    let stream = DemoStream { seed: args.seed, start, spacing_ms, bad_every: args.bad_every };
    eprintln!(
        "demo-producer: writing store sales to {} on {} at {}/s from message {first} (seed {}, every {}th malformed)",
        args.topic, args.bootstrap, args.rate, args.seed, args.bad_every
    );

    let mut stop = Box::pin(shutdown_signal());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut bad) = (0u64, 0u64);
    let mut last_report = Instant::now();
    while args.count.is_none_or(|n| sent < n) {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let (key, value, kind) = stream.message(first + sent);
        let record = FutureRecord::to(&args.topic).key(&key).payload(&value);
        // A broker that goes away is the demo's normal life (dev.sh restarts);
        // keep trying the same message rather than skipping it.
        if let Err((e, _)) = producer.send(record, Duration::from_secs(10)).await {
            eprintln!("demo-producer: message {sent} not delivered: {e}");
            continue;
        }
        sent += 1;
        bad += u64::from(kind != Kind::Good);
        if last_report.elapsed() >= Duration::from_secs(60) {
            eprintln!("demo-producer: {sent} messages sent ({bad} malformed)");
            last_report = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(10)).context("flushing the producer")?;
    eprintln!("demo-producer: stopped after {sent} messages ({bad} malformed)");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
}
