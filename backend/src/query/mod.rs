//! The query service: one read-only SQL `SELECT` over the tenant's own
//! Iceberg tables, run by DataFusion, bounded in rows, time and memory.
//!
//! Isolation comes from what is registered, not from parsing: each query gets
//! a fresh DataFusion session that knows only the tables the statement names,
//! looked up in the caller's destinations (a transaction under row-level
//! security), each as a static snapshot provider that cannot be written.
//! DDL, DML and other statements are refused before planning and again by the
//! planner's `SQLOptions`; DataFusion has no file-reading table functions
//! unless registered, and none are. Functions that would allocate past the
//! memory budget in one go are size-checked ([`functions`]).

mod functions;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast;
use datafusion::sql::TableReference;
use futures::TryStreamExt;
use iceberg::table::Table;
use iceberg::{NamespaceIdent, TableIdent};
use iceberg_datafusion::IcebergStaticTableProvider;
use icehouse_api::TenantId;
use icehouse_workers::iceberg as ice;

use crate::api::tables::warehouse;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The rows of one query, cut at the row limit.
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// More rows were there than asked for.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Runs `sql` for `tenant`: at most `max_rows` rows, within the configured
/// time and memory, and within the service's concurrency limits (429 past
/// them). Mistakes in the SQL are field errors on `sql`.
///
/// The plan is made here; it runs on [`QUERY_RUNTIME`], so a CPU-bound query
/// shares the cores with the API instead of taking its worker threads. A
/// query whose caller goes away (or that runs out of time) is aborted.
pub async fn run(state: &AppState, tenant: TenantId, sql: &str, max_rows: usize) -> ApiResult<QueryOutput> {
    run_then(state, tenant, sql, max_rows, |_, _, _| Ok(())).await.map(|(out, ())| out)
}

/// [`run`], and the rows as JSON (see [`json_rows`]), made on the query
/// runtime too, within a budget as large as the result's and within the
/// query's time.
pub async fn run_json(
    state: &AppState,
    tenant: TenantId,
    sql: &str,
    max_rows: usize,
) -> ApiResult<(QueryOutput, Vec<Vec<serde_json::Value>>)> {
    run_then(state, tenant, sql, max_rows, |out, budget, deadline| json_rows(&out.batches, budget, deadline)).await
}

/// Runs the query, then `then` on its output, the result budget and the
/// deadline, both on the query runtime.
async fn run_then<T: Send + 'static>(
    state: &AppState,
    tenant: TenantId,
    sql: &str,
    max_rows: usize,
    then: impl FnOnce(&QueryOutput, usize, Instant) -> ApiResult<T> + Send + 'static,
) -> ApiResult<(QueryOutput, T)> {
    let started = Instant::now();
    let timeout = Duration::from_millis(state.config.query.timeout_ms);
    let too_long =
        || ApiError::field("sql", format!("the query ran longer than {} s and was cancelled", timeout.as_secs_f64()));
    let slot = QuerySlots::take(&state.query_slots, tenant)?;
    let plan = async {
        let ctx = session(state)?;
        let statement = parse_select(&ctx, sql)?;
        let references = ctx.state().resolve_table_references(&statement).map_err(sql_error)?;
        register_tables(state, tenant, &ctx, &references).await?;
        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await.map_err(sql_error)?;
        // One row past the limit tells whether the result was cut.
        df.limit(0, Some(max_rows + 1)).map_err(sql_error)
    };
    let df = tokio::time::timeout(timeout, plan).await.map_err(|_| too_long())??;
    let result_limit = state.config.query.memory_limit_mb * 1024 * 1024;
    // The slot goes with the work: given back when the work has really
    // ended, not when its caller gave up on it.
    let task = QUERY_RUNTIME.spawn(async move {
        let _slot = slot;
        let out = execute(df, max_rows, result_limit).await?;
        let made = then(&out, result_limit, started + timeout)?;
        ApiResult::Ok((out, made))
    });
    let _abort = AbortOnDrop(task.abort_handle());
    let left = timeout.saturating_sub(started.elapsed());
    let (mut out, made) = match tokio::time::timeout(left, task).await {
        Err(_) => return Err(too_long()),
        Ok(Err(join)) => return Err(ApiError::internal(anyhow::anyhow!("the query task failed: {join}"))),
        Ok(Ok(done)) => done?,
    };
    out.elapsed = started.elapsed();
    Ok((out, made))
}

/// Runs the plan and collects its rows. What is collected has a budget of
/// its own (the operators' pool does not see it), as large as the operators'
/// (`query.memory_limit_mb`), checked as each batch arrives.
async fn execute(df: datafusion::dataframe::DataFrame, max_rows: usize, result_limit: usize) -> ApiResult<QueryOutput> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await.map_err(sql_error)?;
    let (mut batches, mut rows, mut bytes) = (Vec::new(), 0, 0);
    while let Some(batch) = stream.try_next().await.map_err(sql_error)? {
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if bytes > result_limit {
            return Err(ApiError::field(
                "sql",
                format!("the result needs more than the {} MiB a query may use", result_limit >> 20),
            ));
        }
        batches.push(batch);
    }
    let truncated = rows > max_rows;
    if truncated {
        batches = cut(batches, max_rows);
    }
    Ok(QueryOutput { schema, batches, truncated, elapsed: Duration::ZERO })
}

/// The runtime queries execute on: its own threads, one per core.
static QUERY_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("icehouse-query")
        .enable_all()
        .build()
        .expect("the query runtime starts")
});

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many queries run at once, overall and per tenant: past either, a
/// query is refused with 429 instead of queueing behind the others.
pub struct QuerySlots {
    overall: usize,
    per_tenant: usize,
    running: Mutex<(usize, HashMap<TenantId, usize>)>,
}

/// A running query's place; given back when dropped.
pub struct QuerySlot {
    slots: Arc<QuerySlots>,
    tenant: TenantId,
}

impl QuerySlots {
    pub fn new(overall: usize, per_tenant: usize) -> QuerySlots {
        QuerySlots { overall: overall.max(1), per_tenant: per_tenant.max(1), running: Mutex::default() }
    }

    pub fn take(slots: &Arc<QuerySlots>, tenant: TenantId) -> ApiResult<QuerySlot> {
        let mut running = slots.running.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_tenant) = &mut *running;
        let mine = by_tenant.get(&tenant).copied().unwrap_or(0);
        if *total >= slots.overall || mine >= slots.per_tenant {
            return Err(ApiError::TooManyRequests { retry_after_secs: 1, what: "queries running" });
        }
        *total += 1;
        by_tenant.insert(tenant, mine + 1);
        Ok(QuerySlot { slots: slots.clone(), tenant })
    }
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_tenant) = &mut *running;
        *total -= 1;
        if let Some(mine) = by_tenant.get_mut(&self.tenant) {
            *mine -= 1;
            if *mine == 0 {
                by_tenant.remove(&self.tenant);
            }
        }
    }
}

fn session(state: &AppState) -> ApiResult<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(state.config.query.memory_limit_mb * 1024 * 1024, 1.0)
        .build_arc()
        .map_err(ApiError::internal)?;
    // Batches of 1,024 rows (as the Iceberg scan reads them): a constant
    // that a projection copies into every row of a batch (which the pool
    // does not see) makes at most 1,024 copies at a time; see `functions`.
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false)
        .with_batch_size(functions::BATCH_ROWS);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    functions::register(&ctx, state.config.query.memory_limit_mb * 1024 * 1024);
    Ok(ctx)
}

/// Exactly one `SELECT` (or `WITH … SELECT`, `VALUES`); anything else is refused.
fn parse_select(ctx: &SessionContext, sql: &str) -> ApiResult<Statement> {
    let statement = ctx.state().sql_to_statement(sql, &datafusion::common::config::Dialect::Generic).map_err(|e| {
        let text = e.to_string();
        if text.contains("single SQL statement") || text.contains("more than one statement") {
            ApiError::field("sql", "must be exactly one SELECT statement")
        } else {
            sql_error(e)
        }
    })?;
    match &statement {
        Statement::Statement(s) if matches!(**s, ast::Statement::Query(_)) => Ok(statement),
        _ => Err(ApiError::field("sql", "only a read-only SELECT can run here")),
    }
}

/// Registers each named table from the tenant's destinations as
/// `namespace.table` (a table that exists in two destinations is ambiguous).
async fn register_tables(
    state: &AppState,
    tenant: TenantId,
    ctx: &SessionContext,
    references: &[TableReference],
) -> ApiResult<()> {
    let mut tx = db::begin_tenant(&state.pool, tenant).await?;
    let destinations = db::destinations::list(&mut tx, tenant, None, i64::from(i32::MAX) - 1).await?;
    let catalog = ctx.catalog("datafusion").ok_or_else(|| ApiError::internal(anyhow::anyhow!("no default catalog")))?;
    let mut wanted = Vec::new();
    for reference in references {
        let (namespace, name) = match reference {
            TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
            TableReference::Bare { table } => {
                return Err(ApiError::field(
                    "sql",
                    format!("name the table with its namespace, like `namespace.{table}`"),
                ))
            }
            TableReference::Full { .. } => {
                return Err(ApiError::field("sql", format!("`{reference}`: name tables as `namespace.table`")))
            }
        };
        let mut found = None;
        for dest in &destinations {
            let Some(wh) = warehouse(dest, &state.secrets, &state.egress) else { continue };
            if let Some(location) = ice::table_pointer(&mut tx, &wh, &namespace, &name).await? {
                if found.is_some() {
                    return Err(ApiError::field(
                        "sql",
                        format!("`{namespace}.{name}` exists in more than one destination"),
                    ));
                }
                found = Some((wh, location));
            }
        }
        let Some((wh, location)) = found else {
            return Err(ApiError::field("sql", format!("table `{namespace}.{name}` does not exist")));
        };
        wanted.push((reference, namespace, name, wh, location));
    }
    tx.commit().await?;

    // The metadata files are read with no transaction open (a slow bucket
    // holds no database connection).
    for (reference, namespace, name, wh, location) in wanted {
        let loaded = ice::load_at(&wh, &namespace, &name, location).await?;
        // Whatever the table's manifests name must lie in the table's folder.
        let file_io = wh.file_io_within(loaded.metadata.location())?;
        let table = Table::builder()
            .metadata(loaded.metadata)
            .metadata_location(loaded.metadata_location)
            .identifier(TableIdent::new(
                NamespaceIdent::from_strs(namespace.split('.')).map_err(ApiError::internal)?,
                name.clone(),
            ))
            .file_io(file_io)
            .readonly(true)
            // The scan's own tasks (manifests, delete files) on the query runtime too.
            .runtime(iceberg::Runtime::new(&QUERY_RUNTIME))
            .build()
            .map_err(ApiError::internal)?;
        let provider = IcebergStaticTableProvider::try_new_from_table(table).await.map_err(ApiError::internal)?;
        if catalog.schema(&namespace).is_none() {
            catalog.register_schema(&namespace, Arc::new(MemorySchemaProvider::new())).map_err(ApiError::internal)?;
        }
        ctx.register_table(reference.clone(), Arc::new(provider)).map_err(ApiError::internal)?;
    }
    Ok(())
}

fn cut(batches: Vec<RecordBatch>, max_rows: usize) -> Vec<RecordBatch> {
    let mut left = max_rows;
    let mut out = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        out.push(batch.slice(0, take));
        left -= take;
    }
    out
}

/// DataFusion's message, without its error-type prefix, as a field error.
fn sql_error(e: datafusion::error::DataFusionError) -> ApiError {
    // A table whose manifests name files outside it: the warehouse's fault.
    if let Some(refused) = ice::LakeError::refusal_in(&e) {
        return ApiError::from(refused);
    }
    let text = e.strip_backtrace();
    let text = text
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Schema error: ");
    if matches!(e, datafusion::error::DataFusionError::ResourcesExhausted(_)) {
        return ApiError::field("sql", format!("the query needs more memory than it may use: {text}"));
    }
    ApiError::field("sql", text.to_string())
}

/// One value as JSON: numbers as numbers (64-bit integers beyond ±2^53 and
/// non-finite floats as strings, so JavaScript loses nothing), text as text,
/// everything else in Arrow's display form (ISO-8601 timestamps, decimals).
/// The display form of a list or of binary can be several times the Arrow
/// size, so what is made is counted (each value's text, and the value
/// itself) and refused past `budget` bytes. This is plain code that no
/// abort interrupts, so it watches the `deadline` itself.
pub fn json_rows(batches: &[RecordBatch], budget: usize, deadline: Instant) -> ApiResult<Vec<Vec<serde_json::Value>>> {
    use serde_json::Value;
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    let mut made = 0usize;
    let too_big = || {
        ApiError::field("sql", format!("the result as JSON needs more than the {} MiB a query may use", budget >> 20))
    };
    let too_long = || ApiError::field("sql", "writing the result out ran past the query's time limit");
    for batch in batches {
        let columns: Vec<ArrayRef> = batch.columns().to_vec();
        let formatters = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        for i in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(columns.len());
            for (col, fmt) in columns.iter().zip(&formatters) {
                if col.is_null(i) {
                    row.push(Value::Null);
                    continue;
                }
                let value = match col.data_type() {
                    DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
                    DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::UInt8
                    | DataType::UInt16
                    | DataType::UInt32 => {
                        Value::from(fmt.value(i).to_string().parse::<i64>().map_err(ApiError::internal)?)
                    }
                    DataType::Int64 | DataType::UInt64 => {
                        let text = fmt.value(i).to_string();
                        match text.parse::<i64>() {
                            Ok(n) if n.unsigned_abs() <= (1 << 53) => Value::from(n),
                            _ => Value::String(text),
                        }
                    }
                    DataType::Float32 => float(f64::from(col.as_primitive::<Float32Type>().value(i))),
                    DataType::Float64 => float(col.as_primitive::<Float64Type>().value(i)),
                    // Written within what is left, so that one huge list
                    // stops where the budget ends instead of being made whole.
                    _ => {
                        let mut text =
                            Budgeted { text: String::new(), left: budget.saturating_sub(made), deadline, writes: 0 };
                        if std::fmt::Write::write_fmt(&mut text, format_args!("{}", fmt.value(i))).is_err() {
                            return Err(if text.left == 0 { too_big() } else { too_long() });
                        }
                        Value::String(text.text)
                    }
                };
                made +=
                    std::mem::size_of::<Value>() + if let Value::String(text) = &value { json_len(text) } else { 0 };
                row.push(value);
            }
            if made > budget {
                return Err(too_big());
            }
            if Instant::now() > deadline {
                return Err(too_long());
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The bytes `text` takes as a JSON string: a control character is
/// written as `\u00XX`, a quote or backslash with a backslash.
fn json_len(text: &str) -> usize {
    text.len() + text.bytes().map(|b| if b < 0x20 { 5 } else { usize::from(b == b'"' || b == b'\\') }).sum::<usize>()
}

/// Text that refuses to grow past `left` bytes (then `left` is 0), or to be
/// written past the deadline (looked at every 4096 writes).
struct Budgeted {
    text: String,
    left: usize,
    deadline: Instant,
    writes: u32,
}

impl std::fmt::Write for Budgeted {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let Some(left) = self.left.checked_sub(s.len()) else {
            self.left = 0;
            return Err(std::fmt::Error);
        };
        self.writes = self.writes.wrapping_add(1);
        if self.writes & 4095 == 0 && Instant::now() > self.deadline {
            return Err(std::fmt::Error);
        }
        self.left = left;
        self.text.push_str(s);
        Ok(())
    }
}

fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or_else(|| serde_json::Value::String(x.to_string()), serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ListArray, StringArray};
    use datafusion::arrow::datatypes::Int32Type;

    use super::*;

    fn batch(column: ArrayRef) -> RecordBatch {
        RecordBatch::try_from_iter([("c", column)]).unwrap()
    }

    fn message(err: ApiError) -> String {
        match err {
            ApiError::Validation(errors) => errors[0].message.clone(),
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn rows_are_written_out_within_their_budget_and_time() {
        let later = Instant::now() + Duration::from_secs(60);
        let text = batch(Arc::new(StringArray::from(vec!["a"; 10])));
        let rows = json_rows(std::slice::from_ref(&text), 10_000, later).unwrap();
        assert_eq!(rows, vec![vec![serde_json::json!("a")]; 10]);

        // One list of 100,000 numbers, written out as text: stopped at the budget.
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>([Some((0..100_000).map(Some))]);
        let err = message(json_rows(&[batch(Arc::new(list))], 100_000, later).unwrap_err());
        assert!(err.starts_with("the result as JSON needs more than"), "{err}");

        // Past the deadline, nothing more is written.
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        let err = message(json_rows(&[text], 10_000, past).unwrap_err());
        assert_eq!(err, "writing the result out ran past the query's time limit");
    }
}
