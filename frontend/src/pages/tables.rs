//! The Iceberg tables: a list, and one table's schema, partition spec,
//! snapshots and a SQL box.

use icehouse_api::query::{QueryRequest, QueryResult};
use icehouse_api::status::{TableDetail, TableSummary};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::Value;

use crate::api::{self, seg, ApiError};
use crate::components::{FieldErrors, FormError, LoadError, Loading};
use crate::logic::{cell_text, group_digits};

#[component]
pub fn TableList() -> impl IntoView {
    let tables = RwSignal::new(None::<Result<Vec<TableSummary>, ApiError>>);
    spawn_local(async move { tables.set(Some(api::get("/tables").await)) });
    view! {
        <section>
            <h1>"Tables"</h1>
            {move || match tables.get() {
                None => view! { <Loading what="tables" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(list)) if list.is_empty() => {
                    view! { <p id="tables-empty">"No tables yet: a pipeline creates its table when it starts."</p> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <table id="tables-table">
                            <thead>
                                <tr>
                                    <th scope="col">"Table"</th>
                                    <th scope="col" class="num">"Rows"</th>
                                    <th scope="col" class="num">"Snapshots"</th>
                                    <th scope="col">"Metadata"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {list
                                    .into_iter()
                                    .map(|t| {
                                        view! {
                                            <tr id=format!("table-row-{}-{}", t.namespace, t.name)>
                                                <td>
                                                    <A href=format!("/tables/{}/{}", seg(&t.namespace), seg(&t.name))>
                                                        {format!("{}.{}", t.namespace, t.name)}
                                                    </A>
                                                </td>
                                                <td class="num">{group_digits(t.row_count)}</td>
                                                <td class="num">{t.snapshot_count}</td>
                                                <td>
                                                    <code class="path">{t.metadata_location}</code>
                                                </td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

#[component]
pub fn TablePage() -> impl IntoView {
    let params = use_params_map();
    let (namespace, table) =
        params.with_untracked(|p| (p.get("namespace").unwrap_or_default(), p.get("table").unwrap_or_default()));
    let detail = RwSignal::new(None::<Result<TableDetail, ApiError>>);
    {
        let path = format!("/tables/{}/{}", seg(&namespace), seg(&table));
        spawn_local(async move { detail.set(Some(api::get(&path).await)) });
    }
    let qualified = format!("{namespace}.{table}");
    view! {
        <section>
            <h1 id="table-title">{qualified.clone()}</h1>
            {move || match detail.get() {
                None => view! { <Loading what="the table" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(d)) => view! { <TableDetailView d /> }.into_any(),
            }}
            <SqlBox initial=format!("SELECT * FROM {qualified} LIMIT 100") />
        </section>
    }
}

#[component]
fn TableDetailView(d: TableDetail) -> impl IntoView {
    let fields = d.schema.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
    let spec = d.partition_spec.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
    let name_of = {
        let fields = fields.clone();
        move |id: Option<i64>| {
            fields
                .iter()
                .find(|f| f.get("id").and_then(Value::as_i64) == id)
                .and_then(|f| f.get("name").and_then(Value::as_str))
                .unwrap_or("?")
                .to_string()
        }
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    view! {
        <p class="meta">
            <span id="table-row-count">{group_digits(d.summary.row_count)}</span> " rows · "
            {d.summary.snapshot_count} " snapshots · location " <code class="path">{d.location.clone()}</code>
        </p>
        <p class="meta">"Metadata: " <code class="path" id="table-metadata-location">{d.summary.metadata_location.clone()}</code></p>
        <div class="two-col">
            <div>
                <h2>"Schema"</h2>
                <table id="table-schema">
                    <thead>
                        <tr>
                            <th scope="col" class="num">"Id"</th>
                            <th scope="col">"Column"</th>
                            <th scope="col">"Type"</th>
                            <th scope="col">"Required"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {fields
                            .iter()
                            .map(|f| {
                                view! {
                                    <tr>
                                        <td class="num">{text(f.get("id"))}</td>
                                        <td class="schema-name">{text(f.get("name"))}</td>
                                        <td>
                                            <code>{text(f.get("type"))}</code>
                                        </td>
                                        <td>{if f.get("required") == Some(&Value::Bool(true)) { "yes" } else { "no" }}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
            <div>
                <h2>"Partition spec"</h2>
                {if spec.is_empty() {
                    view! { <p id="table-partition-spec">"Not partitioned."</p> }.into_any()
                } else {
                    view! {
                        <ul id="table-partition-spec">
                            {spec
                                .iter()
                                .map(|f| {
                                    let source = name_of(f.get("source-id").and_then(Value::as_i64));
                                    view! {
                                        <li>
                                            <code>{text(f.get("transform"))} "(" {source} ")"</code>
                                            " as "
                                            <code>{text(f.get("name"))}</code>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }}
            </div>
        </div>
        <h2>"Snapshots"</h2>
        <table id="table-snapshots">
            <thead>
                <tr>
                    <th scope="col">"Snapshot"</th>
                    <th scope="col">"Committed"</th>
                    <th scope="col">"Operation"</th>
                    <th scope="col" class="num">"Added rows"</th>
                </tr>
            </thead>
            <tbody>
                {d
                    .snapshots
                    .iter()
                    .rev()
                    .take(50)
                    .map(|s| {
                        let at = chrono::DateTime::from_timestamp_millis(s.timestamp_ms)
                            .map(|t| crate::logic::format_time(&t))
                            .unwrap_or_default();
                        view! {
                            <tr>
                                <td>
                                    <code>{s.snapshot_id}</code>
                                </td>
                                <td>{at}</td>
                                <td>{s.operation.clone()}</td>
                                <td class="num">{s.summary.get("added-records").cloned().unwrap_or_default()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn SqlBox(initial: String) -> impl IntoView {
    let sql = RwSignal::new(initial);
    let result = RwSignal::new(None::<QueryResult>);
    let error = RwSignal::new(None::<ApiError>);
    let running = RwSignal::new(false);
    let run = move || {
        if running.get_untracked() {
            return;
        }
        let req = QueryRequest { sql: sql.get_untracked(), max_rows: Some(500) };
        if req.sql.trim().is_empty() {
            error.set(Some(ApiError::field("sql", "Write a SELECT first.")));
            return;
        }
        running.set(true);
        error.set(None);
        spawn_local(async move {
            match api::post::<_, QueryResult>("/query", &req).await {
                Ok(r) => result.set(Some(r)),
                Err(e) => {
                    result.set(None);
                    error.set(Some(e));
                }
            }
            running.set(false);
        });
    };
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        run();
    };
    view! {
        <h2>"Query"</h2>
        <form class="sql" on:submit=submit>
            <label for="sql-input">"SQL (tables are named " <code>"namespace.table"</code> ")"</label>
            <textarea
                id="sql-input"
                rows="4"
                spellcheck="false"
                aria-describedby="sql-hint"
                bind:value=sql
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        run();
                    }
                }
            ></textarea>
            <p class="hint" id="sql-hint">"One SELECT. Ctrl+Enter runs it."</p>
            <FieldErrors error field="sql" />
            <FormError error shown=&["sql"] id="sql-error" />
            <button id="sql-run" type="submit" disabled=move || running.get()>
                {move || if running.get() { "Running…" } else { "Run" }}
            </button>
        </form>
        <div id="sql-result" aria-live="polite" aria-busy=move || running.get().to_string()>
            {move || result.get().map(|r| view! { <ResultTable r /> })}
        </div>
    }
}

#[component]
fn ResultTable(r: QueryResult) -> impl IntoView {
    let n = r.rows.len();
    view! {
        <p class="meta" id="sql-meta">
            {format!("{n} row{}", if n == 1 { "" } else { "s" })}
            {r.truncated.then_some(" (more rows were cut off)")}
            {format!(" · {} ms", r.elapsed_ms)}
        </p>
        <div class="scroll">
            <table id="sql-result-table">
                <thead>
                    <tr>
                        {r
                            .columns
                            .iter()
                            .map(|c| view! { <th scope="col" title=c.data_type.clone()>{c.name.clone()}</th> })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {r
                        .rows
                        .iter()
                        .map(|row| {
                            view! {
                                <tr>
                                    {row
                                        .iter()
                                        .map(|v| match cell_text(v) {
                                            Some(t) => view! { <td>{t}</td> }.into_any(),
                                            None => view! { <td class="null">"NULL"</td> }.into_any(),
                                        })
                                        .collect_view()}
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
