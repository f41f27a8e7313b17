//! Ingestion throughput, freshness and memory, each printed beside a
//! reference measured in the same run on the same machine:
//!
//! 1. End to end: N JSON messages (~250 bytes, 4 partitions) already in a
//!    tansu broker, committed by `icehouse serve` (in-process worker) into an
//!    Iceberg table, against the rate at which a bare rdkafka consumer reads
//!    the same topic from the same broker (the ceiling: nothing downstream).
//!    Two tansu quirks shape this: its memory storage under-reports the high
//!    watermark (so the consumers count messages rather than compare
//!    offsets), and it answers every fetch only after `fetch.wait.max.ms`,
//!    data waiting or not, which bounds both consumers alike.
//! 2. The data plane alone, no broker: the same messages from memory through
//!    `RowDecoder` → `write_data_files` → `prepare_append` → `swap_pointer`
//!    on one tokio worker thread, against arrow's own JSON decoder and a plain
//!    parquet-rs `ArrowWriter` (zstd) writing the same batches to files.
//! 3. Freshness: a producer paced at 20,000 messages/s stamps each message's
//!    produce time; the committed next offsets are polled every 50 ms and
//!    every message below a new offset counts as committed when it was seen.
//! 4. Peak RSS (`VmHWM`) of the `icehouse` process after the end-to-end run,
//!    beside the same figure for the idle server.
//!
//! Run: `scripts/bench-ingest.sh` (or `cargo run --release -p icehouse-e2e
//! --bin bench-ingest` with `DATABASE_URL` set, the workspace binaries built
//! and tansu installed). `BENCH_MESSAGES` (default 1,000,000) and
//! `BENCH_FRESHNESS_SECS` (default 20) scale it. The broker, Postgres, the
//! server and the load all share the machine's cores: the core count is printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use icehouse_api::pipelines::{CompiledMapping, MessageFormat};
use icehouse_e2e::{test_env, Api, Broker, Server, TestDb};
use icehouse_workers::formats::bench::{orders_mapping, orders_messages};
use icehouse_workers::formats::RowDecoder;
use icehouse_workers::iceberg::{self as ice, Warehouse};
use icehouse_workers::mapping::{table_schema, KafkaMessage};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

const PARTITIONS: i32 = 4;
/// Rows per batch of the data-plane run (one commit each).
const BATCH_ROWS: usize = 100_000;
/// Data-plane and reference runs, alternated; the faster of each counts.
const PLANE_ROUNDS: usize = 2;
const FRESHNESS_RATE: u64 = 20_000;
/// How often the committed offsets are read while measuring.
const POLL: Duration = Duration::from_millis(50);
const E2E_TIMEOUT: Duration = Duration::from_secs(300);
const MIB: f64 = 1024.0 * 1024.0;
/// `fetch.wait.max.ms` of the pipeline's consumer (`workers/src/runtime/ingest/consumer.rs`).
/// tansu answers a fetch only after this wait even when data is waiting, so
/// it sets the broker's read rate; the ceiling is also measured with
/// [`SHORT_FETCH_WAIT_MS`] to show how much.
const PIPELINE_FETCH_WAIT_MS: u32 = 100;
const SHORT_FETCH_WAIT_MS: u32 = 10;

/// Progress on stderr, so stdout holds only the results.
macro_rules! progress {
    ($t0:expr, $($arg:tt)*) => {
        eprintln!("[{:6.1}s] {}", $t0.elapsed().as_secs_f64(), format!($($arg)*))
    };
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_number("BENCH_MESSAGES", 1_000_000)? as usize;
    let fresh_secs = env_number("BENCH_FRESHNESS_SECS", 20)?;
    ensure!(n >= BATCH_ROWS, "BENCH_MESSAGES must be at least {BATCH_ROWS}");
    ensure!(fresh_secs >= 1, "BENCH_FRESHNESS_SECS must be at least 1");

    let db = TestDb::create("icehouse_bench").await?;
    let scratch = Scratch::new()?;
    // Ctrl-C drops the run's future: its broker and server are killed on drop,
    // and the database and files are removed below either way.
    let outcome = tokio::select! {
        r = run(&db.url, &scratch.0, n, fresh_secs) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let dropped = db.drop_now().await.context("dropping the bench database");
    drop(scratch);
    let Some(outcome) = outcome else {
        // Not returning: the runtime would wait for a producer or consumer
        // thread that may still be busy for minutes.
        eprintln!("interrupted; the broker and server are stopped and the bench database dropped");
        std::process::exit(130);
    };
    let report = outcome?;
    dropped?;
    println!("{report}");
    Ok(())
}

/// Every figure of the run, printed at the end.
async fn run(db_url: &str, scratch: &Path, n: usize, fresh_secs: u64) -> anyhow::Result<String> {
    let t0 = Instant::now();
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    progress!(t0, "generating {n} messages");
    let messages = Arc::new(orders_messages(n));
    let json_bytes: usize = messages.iter().map(|m| m.value.as_ref().map_or(0, Vec::len)).sum();

    // The CPU-bound runs first, while nothing else is running; alternated
    // and the faster of each kept, so neither gets a colder machine.
    let (mut plane, mut reference): (Option<PlaneRun>, Option<PlaneRun>) = (None, None);
    for round in 1..=PLANE_ROUNDS {
        progress!(t0, "data plane {round}/{PLANE_ROUNDS}: RowDecoder → Parquet → Iceberg commit, one thread");
        let run = on_own_thread("plane-icehouse", {
            let (url, root, messages) = (db_url.to_string(), scratch.join("plane"), messages.clone());
            move || icehouse_plane(&url, &root, &format!("orders_{round}"), &messages)
        })
        .await?;
        plane = Some(faster(plane, run));
        progress!(t0, "reference {round}/{PLANE_ROUNDS}: arrow-json → parquet-rs ArrowWriter, one thread");
        let run = on_own_thread("plane-reference", {
            let (root, messages) = (scratch.join(format!("reference-{round}")), messages.clone());
            move || reference_plane(&root, &messages)
        })
        .await?;
        reference = Some(faster(reference, run));
    }
    let (plane, reference) = (plane.context("no data-plane run")?, reference.context("no reference run")?);

    let broker = Broker::start_memory().await?;
    broker.create_topic("orders", PARTITIONS).await?;
    progress!(t0, "producing {n} messages to tansu ({})", broker.storage);
    let produce_time = {
        let (addr, messages) = (broker.addr.clone(), messages.clone());
        tokio::task::spawn_blocking(move || produce_all(&addr, "orders", &messages)).await??
    };
    let watermarks = watermarks(&broker.addr, "orders")?;
    progress!(t0, "produced in {:.1}s; broker watermarks (low, high) {watermarks:?}", produce_time.as_secs_f64());

    progress!(t0, "consume-only ceiling: rdkafka from offset 0 until {n} messages");
    let tansu_cpu0 = process_cpu(broker.child.id())?;
    let ceiling = {
        let addr = broker.addr.clone();
        tokio::task::spawn_blocking(move || consume_all(&addr, "orders", n, PIPELINE_FETCH_WAIT_MS)).await??
    };
    let ceiling_tansu_cores = (process_cpu(broker.child.id())? - tansu_cpu0) / ceiling.elapsed.as_secs_f64();
    let short_wait = {
        let addr = broker.addr.clone();
        tokio::task::spawn_blocking(move || consume_all(&addr, "orders", n, SHORT_FETCH_WAIT_MS)).await??
    };

    let mut env = test_env(db_url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    let server = Server::start("serve", &env, scratch)?;
    let server_pid = server.child.id();
    let api = Api::signup(&server.base_url).await?;
    let idle_hwm = vm_hwm_kib(server_pid)?;
    let c = api.post("/api/v1/connections", json!({"name": "tansu", "bootstrap_servers": [broker.addr]})).await?;
    let warehouse_uri = format!("file://{}", scratch.join("warehouse").display());
    let d = api.post("/api/v1/destinations", json!({"name": "lake", "warehouse_uri": warehouse_uri})).await?;
    let mut watch = OffsetWatch::connect(db_url).await?;

    progress!(t0, "Icehouse: pipeline from creation to {n} rows committed");
    let e2e = icehouse_e2e(&api, &mut watch, &c, &d, (n, json_bytes), [server_pid, broker.child.id()]).await?;
    let peak_hwm = vm_hwm_kib(server_pid)?;
    api.post(&format!("/api/v1/pipelines/{}/pause", e2e.pipeline_id), json!({})).await?;

    progress!(t0, "freshness: {FRESHNESS_RATE} messages/s for {fresh_secs}s");
    broker.create_topic("fresh", PARTITIONS).await?;
    let fresh = freshness(&api, &mut watch, &broker.addr, &c, &d, &messages, fresh_secs).await?;
    progress!(t0, "done");

    drop(server);
    drop(broker);
    Ok(report(&Report {
        cores,
        n,
        json_bytes,
        produce_time,
        watermarks,
        ceiling,
        ceiling_tansu_cores,
        short_wait,
        e2e,
        plane,
        reference,
        fresh,
        idle_hwm,
        peak_hwm,
    }))
}

// --- 2. the data plane and its reference ------------------------------------------------

#[derive(Default)]
struct PlaneRun {
    bytes: usize,
    rows: usize,
    wall: Duration,
    /// CPU time of the whole bench process meanwhile (any helper threads included).
    cpu: f64,
    /// Named stages and their wall time.
    stages: Vec<(&'static str, Duration)>,
    files: usize,
}

impl PlaneRun {
    /// MiB of JSON a second on one core: by wall time on one thread, or by
    /// CPU time if helper threads made the process use more than that.
    fn mib_per_core(&self) -> f64 {
        self.bytes as f64 / MIB / self.wall.as_secs_f64().max(self.cpu)
    }
}

/// The run with the shorter wall time.
fn faster(best: Option<PlaneRun>, run: PlaneRun) -> PlaneRun {
    match best {
        Some(best) if best.wall <= run.wall => best,
        _ => run,
    }
}

/// Runs `f` on a named thread of its own (named for profilers), so the
/// caller's runtime (and Ctrl-C) stays free.
async fn on_own_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let _ = tx.send(f());
    })?;
    rx.await.context("the bench thread panicked")?
}

/// `RowDecoder` → `write_data_files` → `prepare_append` → `swap_pointer` in a
/// Postgres transaction, batch after batch, into one day-partitioned table.
fn icehouse_plane(db_url: &str, root: &Path, name: &str, messages: &[KafkaMessage]) -> anyhow::Result<PlaneRun> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut conn = PgConnection::connect(db_url).await.context("connecting to the bench database")?;
        icehouse_workers::MIGRATOR.run(&mut conn).await.context("running migrations")?;
        let wh = Warehouse::local("bench-plane", root)?;
        let mapping = CompiledMapping::compile(&orders_mapping())?;
        let mut table = {
            let pool = sqlx::PgPool::connect(db_url).await.context("connecting to the bench database")?;
            let day = [("sold_at", iceberg::spec::Transform::Day)];
            let scope = icehouse_workers::coord::Scope::system(&pool);
            ice::create_table(scope, &wh, "bench", name, table_schema(&mapping)?, &day).await?
        };
        let mut decoder = RowDecoder::new(MessageFormat::Json, &mapping, table.arrow_schema()?, usize::MAX)?;
        let mut run = PlaneRun::default();
        let (mut decode, mut write, mut prepare, mut commit) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let cpu0 = process_cpu(std::process::id())?;
        let started = Instant::now();
        for chunk in messages.chunks(BATCH_ROWS) {
            let t = Instant::now();
            for msg in chunk {
                run.bytes += msg.value.as_ref().map_or(0, Vec::len);
                decoder.push(msg).map_err(|r| anyhow!("message at offset {} rejected: {r}", msg.offset))?;
            }
            let batch = decoder.finish();
            run.rows += batch.num_rows();
            let t = lap(t, &mut decode);
            let files = ice::write_data_files(&wh, &table, batch).await?;
            run.files += files.len();
            let t = lap(t, &mut write);
            let summary = HashMap::from([(ice::COMMIT_ID_KEY.to_string(), uuid::Uuid::now_v7().to_string())]);
            let prepared = ice::prepare_append(&wh, &table, files, summary).await?;
            let t = lap(t, &mut prepare);
            let mut tx = conn.begin().await?;
            ice::swap_pointer(&mut tx, &wh, &prepared).await.context("the pointer swap, with no other writer")?;
            tx.commit().await?;
            ice::finish_commit(&wh, &prepared).await;
            table = prepared.into_loaded();
            lap(t, &mut commit);
        }
        run.wall = started.elapsed();
        run.cpu = process_cpu(std::process::id())? - cpu0;
        run.stages = vec![("decode", decode), ("write Parquet", write), ("prepare commit", prepare), ("swap", commit)];
        let total = table
            .metadata
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-records").cloned());
        ensure!(total == Some(messages.len().to_string()), "the table holds {total:?} rows, not {}", messages.len());
        Ok(run)
    })
}

/// Arrow's JSON decoder and parquet-rs's `ArrowWriter` (zstd, the table's
/// codec and level), one file per batch: the same work without Iceberg.
/// UUIDs stay strings (arrow-json cannot parse them to 16 bytes).
fn reference_plane(root: &Path, messages: &[KafkaMessage]) -> anyhow::Result<PlaneRun> {
    std::fs::create_dir_all(root)?;
    let string = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        string("store"),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("sold_at", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), false),
        Field::new("customer", DataType::Struct(Fields::from(vec![string("id"), string("tier")])), true),
        Field::new("tags", DataType::List(Arc::new(string("item"))), true),
    ]));
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(BATCH_ROWS).build_decoder()?;
    let mut run = PlaneRun::default();
    let (mut decode, mut write) = (Duration::ZERO, Duration::ZERO);
    let cpu0 = process_cpu(std::process::id())?;
    let started = Instant::now();
    for (i, chunk) in messages.chunks(BATCH_ROWS).enumerate() {
        let t = Instant::now();
        for msg in chunk {
            let value = msg.value.as_deref().unwrap_or_default();
            run.bytes += value.len();
            let used = decoder.decode(value)?;
            ensure!(used == value.len(), "arrow-json stopped inside message {}", msg.offset);
        }
        let batch = decoder.flush()?.context("arrow-json decoded no rows")?;
        ensure!(batch.num_rows() == chunk.len(), "arrow-json decoded {} rows of {}", batch.num_rows(), chunk.len());
        run.rows += batch.num_rows();
        let t = lap(t, &mut decode);
        let file = std::fs::File::create(root.join(format!("part-{i:05}.parquet")))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props.clone()))?;
        writer.write(&batch)?;
        writer.close()?;
        run.files += 1;
        lap(t, &mut write);
    }
    run.wall = started.elapsed();
    run.cpu = process_cpu(std::process::id())? - cpu0;
    run.stages = vec![("decode", decode), ("write Parquet", write)];
    Ok(run)
}

/// Adds the time since `t` to `total`; returns now, the start of the next lap.
fn lap(t: Instant, total: &mut Duration) -> Instant {
    let now = Instant::now();
    *total += now - t;
    now
}

// --- 1. end to end --------------------------------------------------------------------------

/// Counts failed deliveries and, when `log` is set, records where each
/// message landed with the produce time it was sent with (the opaque).
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    log: Option<Mutex<Vec<(i32, i64, i64)>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, produced_at_us: usize) {
        match result {
            Ok(m) => {
                if let Some(log) = &self.log {
                    log.lock().unwrap().push((m.partition(), m.offset(), produced_at_us as i64));
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Deliveries {
    fn check(&self) -> anyhow::Result<()> {
        let failed = self.failed.load(Ordering::Relaxed);
        ensure!(failed == 0, "{failed} messages were not delivered: {:?}", self.first_error.lock().unwrap());
        Ok(())
    }
}

fn producer(addr: &str, log: bool) -> anyhow::Result<ThreadedProducer<Deliveries>> {
    let context = Deliveries { log: log.then(Mutex::default), ..Default::default() };
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(context)
        .context("creating the producer")
}

/// Sends one message, waiting while the client's queue is full.
fn send(producer: &ThreadedProducer<Deliveries>, record: BaseRecord<'_, [u8], [u8], usize>) -> anyhow::Result<()> {
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("producing: {e}"),
        }
    }
}

/// Produces every message (partition `i % 4`) and waits for all acks.
fn produce_all(addr: &str, topic: &str, messages: &[KafkaMessage]) -> anyhow::Result<Duration> {
    let producer = producer(addr, false)?;
    let started = Instant::now();
    for (i, msg) in messages.iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, 0).partition(i as i32 % PARTITIONS);
        if let Some(key) = &msg.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &msg.value {
            record = record.payload(value.as_slice());
        }
        send(&producer, record)?;
    }
    producer.flush(Duration::from_secs(120)).context("waiting for the broker's acks")?;
    producer.context().check()?;
    Ok(started.elapsed())
}

/// (low, high) watermark of each partition as the broker reports them.
fn watermarks(addr: &str, topic: &str) -> anyhow::Result<Vec<(i64, i64)>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", addr).create()?;
    (0..PARTITIONS)
        .map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).map_err(anyhow::Error::from))
        .collect()
}

struct Rate {
    messages: usize,
    bytes: usize,
    elapsed: Duration,
    /// CPU cores the bench process (the consumer) used meanwhile, if measured.
    consumer_cores: Option<f64>,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / MIB / self.elapsed.as_secs_f64()
    }
}

/// Reads the topic from offset 0 with a bare consumer (the fetch settings
/// the pipeline's consumer uses, [`PIPELINE_FETCH_WAIT_MS`] included) until
/// `n` messages have arrived.
fn consume_all(addr: &str, topic: &str, n: usize, fetch_wait_ms: u32) -> anyhow::Result<Rate> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("bench-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "65536")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Offset(0))?;
    }
    consumer.assign(&tpl)?;
    let cpu0 = process_cpu(std::process::id())?;
    let started = Instant::now();
    let (mut messages, mut bytes) = (0, 0);
    while messages < n {
        ensure!(started.elapsed() < E2E_TIMEOUT, "only {messages} of {n} messages consumed");
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                messages += 1;
                bytes += m.payload_len();
            }
            Some(Err(e)) => bail!("consuming: {e}"),
            None => {}
        }
    }
    let elapsed = started.elapsed();
    let consumer_cores = (process_cpu(std::process::id())? - cpu0) / elapsed.as_secs_f64();
    Ok(Rate { messages, bytes, elapsed, consumer_cores: Some(consumer_cores) })
}

struct E2eRun {
    pipeline_id: String,
    rate: Rate,
    /// From pipeline creation until its lease state was `running`.
    running_after: Option<Duration>,
    /// Each commit seen: when (from pipeline creation) and how many messages it added.
    commits: Vec<(Duration, i64)>,
    /// CPU cores used on average during the run: icehouse, tansu.
    cores: [f64; 2],
}

async fn icehouse_e2e(
    api: &Api,
    watch: &mut OffsetWatch,
    connection: &Value,
    destination: &Value,
    (n, bytes): (usize, usize),
    pids: [u32; 2],
) -> anyhow::Result<E2eRun> {
    let cpu0 = [process_cpu(pids[0])?, process_cpu(pids[1])?];
    let started = Instant::now();
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "orders", "connection_id": connection["id"], "topic": "orders",
                   "destination_id": destination["id"], "table_name": "orders", "mapping": orders_mapping(),
                   "partition_by": [{"column": "sold_at", "transform": "day"}]}),
        )
        .await?;
    let pipeline_id = p["id"].as_str().context("the pipeline has no id")?.to_string();
    let uuid: uuid::Uuid = pipeline_id.parse()?;
    let (mut running_after, mut commits, mut last_done) = (None, Vec::new(), 0);
    // Polled in Postgres (the rows the status endpoint reads): the status
    // endpoint also asks the broker for watermarks with a new client each call,
    // too heavy to call every 50 ms on the machine under test.
    loop {
        let lease = watch.lease(uuid).await?;
        if let Some((state, done, error)) = lease {
            if running_after.is_none() && state == "running" {
                running_after = Some(started.elapsed());
            }
            if done > last_done {
                commits.push((started.elapsed(), done - last_done));
                last_done = done;
            }
            if done as usize >= n {
                break;
            }
            if started.elapsed() > E2E_TIMEOUT {
                bail!(
                    "only {done} of {n} messages committed after {E2E_TIMEOUT:?} (state {state}, last error {error:?})"
                );
            }
        } else if started.elapsed() > E2E_TIMEOUT {
            bail!("no worker claimed the pipeline in {E2E_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    let elapsed = started.elapsed();
    let cores = [
        (process_cpu(pids[0])? - cpu0[0]) / elapsed.as_secs_f64(),
        (process_cpu(pids[1])? - cpu0[1]) / elapsed.as_secs_f64(),
    ];
    let status = api.get(&format!("/api/v1/pipelines/{pipeline_id}/status")).await?;
    let done = status["rows_committed"].as_i64().unwrap_or(0) + status["dead_letter_rows"].as_i64().unwrap_or(0);
    ensure!(done as usize == n, "the status endpoint says {done} messages committed, not {n}: {status}");
    Ok(E2eRun {
        pipeline_id,
        rate: Rate { messages: n, bytes, elapsed, consumer_cores: None },
        running_after,
        commits,
        cores,
    })
}

/// A connection that may read every tenant's pipeline rows.
struct OffsetWatch(PgConnection);

impl OffsetWatch {
    async fn connect(url: &str) -> anyhow::Result<OffsetWatch> {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query("SELECT set_config('icehouse.system', 'on', false)").execute(&mut conn).await?;
        Ok(OffsetWatch(conn))
    }

    /// (state, rows + dead-letter rows committed, last error) of the pipeline's lease.
    async fn lease(&mut self, pipeline: uuid::Uuid) -> anyhow::Result<Option<(String, i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT state, rows_committed + dead_letter_rows, last_error FROM pipeline_leases WHERE pipeline_id = $1",
        )
        .bind(pipeline)
        .fetch_optional(&mut self.0)
        .await?)
    }

    async fn offsets(&mut self, pipeline: uuid::Uuid) -> anyhow::Result<Vec<(i32, i64)>> {
        Ok(sqlx::query_as("SELECT partition, next_offset FROM pipeline_offsets WHERE pipeline_id = $1")
            .bind(pipeline)
            .fetch_all(&mut self.0)
            .await?)
    }
}

// --- 3. freshness ------------------------------------------------------------------------------

struct Freshness {
    produced: usize,
    produce_rate: f64,
    /// Commit-observed minus produce time of every message, in ms, sorted.
    latencies_ms: Vec<f64>,
    missing: usize,
    commits: usize,
    /// Mean time between two reads of the offsets.
    poll_ms: f64,
}

impl Freshness {
    fn p(&self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        self.latencies_ms[((self.latencies_ms.len() - 1) as f64 * q).round() as usize]
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or_default()
}

async fn freshness(
    api: &Api,
    watch: &mut OffsetWatch,
    addr: &str,
    connection: &Value,
    destination: &Value,
    templates: &Arc<Vec<KafkaMessage>>,
    secs: u64,
) -> anyhow::Result<Freshness> {
    let mut mapping = serde_json::to_value(orders_mapping())?;
    mapping["columns"]
        .as_array_mut()
        .context("a mapping has columns")?
        .push(json!({"name": "produced_at_us", "type": "long", "path": "$.produced_at_us"}));
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "fresh", "connection_id": connection["id"], "topic": "fresh",
                   "destination_id": destination["id"], "table_name": "fresh", "mapping": mapping,
                   "partition_by": [{"column": "sold_at", "transform": "day"}]}),
        )
        .await?;
    let pipeline: uuid::Uuid = p["id"].as_str().context("the pipeline has no id")?.parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(watch.lease(pipeline).await?, Some((state, ..)) if state == "running") {
        ensure!(Instant::now() < deadline, "the freshness pipeline is not running after 60 s");
        tokio::time::sleep(POLL).await;
    }

    let producer = Arc::new(producer(addr, true)?);
    let total = (FRESHNESS_RATE * secs) as usize;
    let sending = {
        let (producer, templates) = (producer.clone(), templates.clone());
        tokio::task::spawn_blocking(move || paced_produce(&producer, "fresh", &templates, total))
    };

    // (observed at µs, partition, next offset) on every change.
    let mut seen: Vec<(i64, i32, i64)> = Vec::new();
    let mut last: HashMap<i32, i64> = HashMap::new();
    let (mut polls, poll_started) = (0usize, Instant::now());
    let mut drain_deadline = None;
    loop {
        // Before the query: a commit its snapshot sees landed before this.
        let observed = now_us();
        let offsets = watch.offsets(pipeline).await?;
        polls += 1;
        for (partition, next) in offsets {
            if last.get(&partition) != Some(&next) {
                last.insert(partition, next);
                seen.push((observed, partition, next));
            }
        }
        if drain_deadline.is_none() && sending.is_finished() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(30));
        }
        if drain_deadline.is_some() {
            let log = producer.context().log.as_ref().map_or(0, |l| l.lock().unwrap().len());
            let committed: i64 = last.values().sum();
            if committed as usize >= log || drain_deadline.is_some_and(|d| Instant::now() > d) {
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let poll_ms = poll_started.elapsed().as_secs_f64() * 1000.0 / polls.max(1) as f64;
    let produce_elapsed = sending.await??;
    producer.context().check()?;

    // Per partition, the offsets in the order they were seen: a message is
    // committed at the first observation whose next offset is past it.
    let mut by_partition: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
    // A commit moves every partition's offset at once: count the reads that saw one.
    let (mut commits, mut last_commit_seen) = (0, None);
    for (observed, partition, next) in seen {
        if next > 0 && last_commit_seen != Some(observed) {
            commits += 1;
            last_commit_seen = Some(observed);
        }
        by_partition.entry(partition).or_default().push((next, observed));
    }
    let deliveries =
        std::mem::take(&mut *producer.context().log.as_ref().context("deliveries are logged")?.lock().unwrap());
    let mut latencies_ms = Vec::with_capacity(deliveries.len());
    let mut missing = 0;
    for (partition, offset, produced_at) in &deliveries {
        let observations = by_partition.get(partition).map(Vec::as_slice).unwrap_or_default();
        let i = observations.partition_point(|(next, _)| next <= offset);
        match observations.get(i) {
            Some((_, observed)) => latencies_ms.push((observed - produced_at) as f64 / 1000.0),
            None => missing += 1,
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Freshness {
        produced: deliveries.len(),
        produce_rate: total as f64 / produce_elapsed.as_secs_f64(),
        latencies_ms,
        missing,
        commits,
        poll_ms,
    })
}

/// Sends `total` messages at [`FRESHNESS_RATE`], each carrying its send time
/// as `produced_at_us` (also the delivery opaque); returns how long sending took.
fn paced_produce(
    producer: &ThreadedProducer<Deliveries>,
    topic: &str,
    templates: &[KafkaMessage],
    total: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for i in 0..total {
        if i % 100 == 0 {
            let due = started + Duration::from_secs_f64(i as f64 / FRESHNESS_RATE as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let template = &templates[i % templates.len()];
        let body = template.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).context("a template")?;
        let produced_at = now_us();
        let value = format!("{{\"produced_at_us\":{produced_at},{}", &body[1..]);
        let key = i.to_string();
        let record = BaseRecord::with_opaque_to(topic, produced_at as usize)
            .partition(i as i32 % PARTITIONS)
            .key(key.as_bytes())
            .payload(value.as_bytes());
        send(producer, record)?;
    }
    let elapsed = started.elapsed();
    producer.flush(Duration::from_secs(30)).context("waiting for the broker's acks")?;
    Ok(elapsed)
}

// --- the report --------------------------------------------------------------------------------

struct Report {
    cores: usize,
    n: usize,
    json_bytes: usize,
    produce_time: Duration,
    watermarks: Vec<(i64, i64)>,
    ceiling: Rate,
    ceiling_tansu_cores: f64,
    /// The ceiling again with [`SHORT_FETCH_WAIT_MS`].
    short_wait: Rate,
    e2e: E2eRun,
    plane: PlaneRun,
    reference: PlaneRun,
    fresh: Freshness,
    idle_hwm: u64,
    peak_hwm: u64,
}

fn report(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = |d: Duration| d.as_secs_f64();
    let _ = writeln!(
        out,
        "bench-ingest: {} cores; {} messages, {:.0} B average ({:.1} MiB of JSON), {PARTITIONS} partitions; \
         tansu (memory storage), Postgres, icehouse and the load on the same machine",
        r.cores,
        r.n,
        r.json_bytes as f64 / r.n as f64,
        r.json_bytes as f64 / MIB
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<36} {:>16}   {:<40} {:>6}   target", "figure", "measured", "reference", "ratio");
    let row = |out: &mut String, figure: &str, measured: String, reference: String, ratio: f64, target: &str| {
        let ratio = if ratio.is_finite() { format!("{ratio:.2}") } else { "-".into() };
        let _ = writeln!(out, "{figure:<36} {measured:>16}   {reference:<40} {ratio:>6}   {target}");
    };
    let (e2e, ceiling) = (&r.e2e.rate, &r.ceiling);
    row(
        &mut out,
        "1 end to end, msg/s to committed",
        format!("{:.0}", e2e.per_sec()),
        format!("{:.0} consume-only rdkafka", ceiling.per_sec()),
        e2e.per_sec() / ceiling.per_sec(),
        "≥ 0.85",
    );
    row(
        &mut out,
        "  MiB/s of JSON",
        format!("{:.1}", e2e.mib_per_sec()),
        format!("{:.1}", ceiling.mib_per_sec()),
        e2e.mib_per_sec() / ceiling.mib_per_sec(),
        "",
    );
    let (plane, reference) = (&r.plane, &r.reference);
    row(
        &mut out,
        "2 data plane, MiB/s of JSON per core",
        format!("{:.1}", plane.mib_per_core()),
        format!("{:.1} arrow-json + parquet-rs", reference.mib_per_core()),
        plane.mib_per_core() / reference.mib_per_core(),
        "≥ 20 MiB/s, ≥ 0.7",
    );
    let f = &r.fresh;
    row(
        &mut out,
        &format!("3 freshness at {}k msg/s, p50", FRESHNESS_RATE / 1000),
        format!("{:.0} ms", f.p(0.5)),
        "1000 ms flush interval".into(),
        f.p(0.5) / 1000.0,
        "",
    );
    row(&mut out, "  p99", format!("{:.0} ms", f.p(0.99)), "1000 ms".into(), f.p(0.99) / 1000.0, "p99 ≤ 2000 ms");
    row(
        &mut out,
        "4 peak RSS of icehouse (VmHWM)",
        format!("{:.0} MiB", r.peak_hwm as f64 / 1024.0),
        "idle server, same process".into(),
        r.peak_hwm as f64 / r.idle_hwm.max(1) as f64,
        "",
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "1  produced in {:.1}s ({:.0} msg/s); broker watermarks (low, high) per partition {:?} for {} messages \
         each: tansu's memory storage under-reports the high watermark, so nothing here relies on it",
        secs(r.produce_time),
        r.n as f64 / secs(r.produce_time),
        r.watermarks,
        r.n / PARTITIONS as usize
    );
    let _ = writeln!(
        out,
        "   consume-only: {} messages in {:.2}s with fetch.wait.max.ms={PIPELINE_FETCH_WAIT_MS} (the pipeline's); \
         consumer at {:.2} cores, tansu at {:.2} cores; with fetch.wait.max.ms={SHORT_FETCH_WAIT_MS}: {:.0} msg/s \
         (tansu holds every fetch for the full wait)",
        ceiling.messages,
        secs(ceiling.elapsed),
        ceiling.consumer_cores.unwrap_or(f64::NAN),
        r.ceiling_tansu_cores,
        r.short_wait.per_sec()
    );
    let ms = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0));
    let _ = writeln!(
        out,
        "   icehouse: {:.2}s from pipeline creation, running after {}; icehouse at {:.2} cores, tansu at {:.2} cores",
        secs(e2e.elapsed),
        ms(r.e2e.running_after),
        r.e2e.cores[0],
        r.e2e.cores[1]
    );
    let commits: Vec<String> =
        r.e2e.commits.iter().map(|(at, rows)| format!("{:.2}s +{}k", at.as_secs_f64(), rows / 1000)).collect();
    let _ = writeln!(out, "   commits seen (from creation, messages added): {}", commits.join(", "));
    if let Some(running) = r.e2e.running_after {
        let rate = e2e.messages as f64 / (e2e.elapsed - running).as_secs_f64();
        let _ = writeln!(
            out,
            "   icehouse from `running` (without the lease claim) to committed: {rate:.0} msg/s, {:.2} of the ceiling",
            rate / ceiling.per_sec()
        );
    }
    for (name, run) in
        [("data plane", plane), ("reference (UUIDs as strings, no partition split, no Iceberg metadata)", reference)]
    {
        let stages: Vec<String> =
            run.stages.iter().map(|(stage, d)| format!("{stage} {:.2}s", d.as_secs_f64())).collect();
        let _ = writeln!(
            out,
            "2  {name} (faster of {PLANE_ROUNDS}): {} rows in {:.2}s wall, {:.2} CPU-s ({:.2} cores), {} files; {}",
            run.rows,
            secs(run.wall),
            run.cpu,
            run.cpu / secs(run.wall),
            run.files,
            stages.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "3  {} messages produced at {:.0} msg/s; {} commits observed, offsets read every {:.0} ms \
         (latencies are late by up to that); max {:.0} ms; {} never seen committed; the pipeline's \
         fetches wait {PIPELINE_FETCH_WAIT_MS} ms at tansu",
        f.produced,
        f.produce_rate,
        f.commits,
        f.poll_ms,
        f.p(1.0),
        f.missing
    );
    let _ = write!(
        out,
        "4  idle server VmHWM {:.0} MiB; after the end-to-end run {:.0} MiB",
        r.idle_hwm as f64 / 1024.0,
        r.peak_hwm as f64 / 1024.0
    );
    out
}

// --- helpers -------------------------------------------------------------------------------------

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.replace(['_', ','], "").parse().with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// CPU seconds (user + system) a process has used so far.
fn process_cpu(pid: u32) -> anyhow::Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("unexpected /proc/pid/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (USER_HZ = 100 on Linux).
    let ticks: u64 =
        fields.get(11..13).context("short /proc/pid/stat")?.iter().map(|f| f.parse::<u64>().unwrap_or(0)).sum();
    Ok(ticks as f64 / 100.0)
}

/// Peak resident set size of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/pid/status")?;
    line.split_whitespace().nth(1).context("empty VmHWM")?.parse().context("VmHWM is not a number")
}

/// A temporary folder for the warehouses and reference files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("icehouse-bench-ingest-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
