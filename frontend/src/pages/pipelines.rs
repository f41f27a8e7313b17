//! The pipelines: a list with state and lag, and one pipeline's page with its
//! status (polled), sparklines, partition lag and dead-letter rows.

use icehouse_api::pagination::Page;
use icehouse_api::pipelines::{DesiredState, Pipeline};
use icehouse_api::status::{DeadLetterList, PipelineState, PipelineStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{self, ApiError};
use crate::app::poll;
use crate::components::{FormError, LoadError, Loading, Session, Sparkline};
use crate::logic::{ago, format_time, group_digits, pretty_value, total_lag};

pub fn state_text(state: PipelineState) -> &'static str {
    match state {
        PipelineState::Starting => "starting",
        PipelineState::Running => "running",
        PipelineState::Paused => "paused",
        PipelineState::Failing => "failing",
    }
}

type Row = (Pipeline, Option<PipelineStatus>);

async fn load_list() -> Result<Vec<Row>, ApiError> {
    let page: Page<Pipeline> = api::get("/pipelines?limit=200").await?;
    let statuses = futures::future::join_all(
        page.items
            .iter()
            .map(|p| async move { api::get::<PipelineStatus>(&format!("/pipelines/{}/status", p.id)).await.ok() }),
    )
    .await;
    Ok(page.items.into_iter().zip(statuses).collect())
}

#[component]
pub fn PipelineList() -> impl IntoView {
    let session = Session::get();
    let rows = RwSignal::new(None::<Result<Vec<Row>, ApiError>>);
    let busy = StoredValue::new(false);
    poll(5_000, move || {
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        spawn_local(async move {
            let result = load_list().await;
            rows.set(Some(result));
            busy.set_value(false);
        });
    });

    view! {
        <section>
            <div class="title-row">
                <h1>"Pipelines"</h1>
                <Show when=move || session.can_edit()>
                    <A href="/pipelines/new" attr:id="new-pipeline" attr:class="button">"New pipeline"</A>
                </Show>
            </div>
            {move || match rows.get() {
                None => view! { <Loading what="pipelines" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(list)) if list.is_empty() => {
                    view! {
                        <p id="pipelines-empty">
                            "No pipelines yet. "
                            {session
                                .can_edit()
                                .then(|| view! { <A href="/pipelines/new" attr:id="create-first-pipeline">"Create the first one"</A> })}
                        </p>
                    }
                        .into_any()
                }
                Some(Ok(list)) => view! { <PipelineTable list /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn PipelineTable(list: Vec<Row>) -> impl IntoView {
    view! {
        <table id="pipelines-table">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Topic"</th>
                    <th scope="col">"Table"</th>
                    <th scope="col">"State"</th>
                    <th scope="col" class="num">"Lag"</th>
                    <th scope="col" class="num">"Rows"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|(p, status)| {
                        let state = status.as_ref().map(|s| state_text(s.state)).unwrap_or("unknown");
                        let lag = status
                            .as_ref()
                            .and_then(total_lag)
                            .map(group_digits)
                            .unwrap_or_else(|| "—".into());
                        let rows = status.as_ref().map(|s| group_digits(s.rows_committed)).unwrap_or_default();
                        let name = p.name.clone();
                        view! {
                            <tr id=format!("pipeline-row-{}", p.id) data-name=p.name.clone()>
                                <td>
                                    <A href=format!("/pipelines/{}", p.id)>{name}</A>
                                </td>
                                <td>{p.topic.clone()}</td>
                                <td>{format!("{}.{}", p.namespace, p.table_name)}</td>
                                <td>
                                    <span class=format!("state state-{state} pipeline-state")>{state}</span>
                                </td>
                                <td class="num pipeline-lag">{lag}</td>
                                <td class="num pipeline-rows">{rows}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn PipelinePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    // The page is rebuilt by the router for another id, so reading it once is enough.
    let id = id();
    let session = Session::get();
    let pipeline = RwSignal::new(None::<Result<Pipeline, ApiError>>);
    let status = RwSignal::new(None::<Result<PipelineStatus, ApiError>>);
    let dead = RwSignal::new(None::<Result<DeadLetterList, ApiError>>);
    let action_error = RwSignal::new(None::<ApiError>);
    let acting = RwSignal::new(false);

    {
        let id = id.clone();
        spawn_local(async move { pipeline.set(Some(api::get(&format!("/pipelines/{id}")).await)) });
    }

    // Status every 2 s; dead-letter rows again whenever their count moves.
    let busy = StoredValue::new(false);
    let seen_dead = StoredValue::new(None::<i64>);
    {
        let id = id.clone();
        poll(2_000, move || {
            if busy.get_value() {
                return;
            }
            busy.set_value(true);
            let id = id.clone();
            spawn_local(async move {
                let result = api::get::<PipelineStatus>(&format!("/pipelines/{id}/status")).await;
                let count = result.as_ref().ok().map(|s| s.dead_letter_rows);
                // Keep showing the last good status through a passing error.
                let keep_old = result.is_err() && matches!(status.get_untracked(), Some(Ok(_)));
                if !keep_old {
                    status.set(Some(result));
                }
                // Also again after a failed load, so a passing error does not stay.
                let failed = dead.with_untracked(|d| matches!(d, Some(Err(_))));
                if count.is_some() && (count != seen_dead.get_value() || failed) {
                    seen_dead.set_value(count);
                    dead.set(Some(api::get(&format!("/pipelines/{id}/dead-letters?limit=50")).await));
                }
                busy.set_value(false);
            });
        });
    }

    let act = {
        let id = id.clone();
        move |verb: &'static str| {
            let id = id.clone();
            acting.set(true);
            action_error.set(None);
            spawn_local(async move {
                match api::post_action::<Pipeline>(&format!("/pipelines/{id}/{verb}")).await {
                    Ok(p) => pipeline.set(Some(Ok(p))),
                    Err(e) => action_error.set(Some(e)),
                }
                acting.set(false);
            });
        }
    };

    let header = move || {
        pipeline.get().map(|p| match p {
            Err(e) => view! { <LoadError error=e /> }.into_any(),
            Ok(p) => {
                let paused = p.desired_state == DesiredState::Paused;
                let act = act.clone();
                view! {
                    <div class="title-row">
                        <h1 id="pipeline-name">{p.name.clone()}</h1>
                        <Show when=move || session.can_edit()>
                            {
                                let act = act.clone();
                                if paused {
                                    view! {
                                        <button id="pipeline-resume" type="button" disabled=move || acting.get() on:click=move |_| act("resume")>
                                            {move || if acting.get() { "Resuming…" } else { "Resume" }}
                                        </button>
                                    }
                                        .into_any()
                                } else {
                                    view! {
                                        <button id="pipeline-pause" type="button" class="secondary" disabled=move || acting.get() on:click=move |_| act("pause")>
                                            {move || if acting.get() { "Pausing…" } else { "Pause" }}
                                        </button>
                                    }
                                        .into_any()
                                }
                            }
                        </Show>
                    </div>
                    <p class="meta">
                        "Topic " <code id="pipeline-topic">{p.topic.clone()}</code> " → table "
                        <A href=format!("/tables/{}/{}", p.namespace, p.table_name) attr:id="pipeline-table">
                            {format!("{}.{}", p.namespace, p.table_name)}
                        </A>
                        " · " {p.mapping.columns.len()} " columns · starts from "
                        {format!("{:?}", p.start_position).to_lowercase()} " · desired "
                        <span id="pipeline-desired">{format!("{:?}", p.desired_state).to_lowercase()}</span>
                    </p>
                }
                    .into_any()
            }
        })
    };

    view! {
        <section>
            {move || if pipeline.with(Option::is_none) { Some(view! { <Loading what="the pipeline" /> }) } else { None }}
            {header}
            <FormError error=action_error id="pipeline-action-error" />
            {move || match status.get() {
                None => view! { <Loading what="status" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(s)) => view! { <StatusView s /> }.into_any(),
            }}
            <h2>"Dead letters"</h2>
            {move || match dead.get() {
                None => view! { <Loading what="dead letters" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(list)) => view! { <DeadLetters list /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn StatusView(s: PipelineStatus) -> impl IntoView {
    let rows: Vec<i64> = s.minutes.iter().map(|m| m.rows).collect();
    let dead: Vec<i64> = s.minutes.iter().map(|m| m.dead_letter_rows).collect();
    let rows_hour: i64 = rows.iter().sum();
    let dead_hour: i64 = dead.iter().sum();
    let state = state_text(s.state);
    let now = js_sys::Date::now() as i64;
    view! {
        <dl class="stats">
            <div>
                <dt>"State"</dt>
                <dd>
                    <span id="pipeline-state" class=format!("state state-{state}")>{state}</span>
                </dd>
            </div>
            <div>
                <dt>"Rows committed"</dt>
                <dd id="pipeline-rows">{group_digits(s.rows_committed)}</dd>
            </div>
            <div>
                <dt>"Dead letters"</dt>
                <dd id="pipeline-dead-letter-count">{group_digits(s.dead_letter_rows)}</dd>
            </div>
            <div>
                <dt>"Lag"</dt>
                <dd id="pipeline-lag">{total_lag(&s).map(group_digits).unwrap_or_else(|| "unknown".into())}</dd>
            </div>
            <div>
                <dt>"Last commit"</dt>
                <dd id="pipeline-last-commit">
                    {s
                        .last_commit_at
                        .map(|t| view! { <time title=format_time(&t)>{ago(&t, now)}</time> }.into_any())
                        .unwrap_or_else(|| "never".into_any())}
                </dd>
            </div>
        </dl>
        {s
            .last_error
            .clone()
            .map(|e| {
                view! {
                    <div class="last-error" role="status">
                        <strong>"Last error"</strong>
                        {s.last_error_at.map(|t| format!(" ({})", ago(&t, now)))}
                        ": "
                        <span id="pipeline-last-error">{e}</span>
                    </div>
                }
            })}
        {s.watermarks_error.clone().map(|e| view! { <p class="hint" id="pipeline-watermarks-error">"Lag unknown: " {e}</p> })}
        <div class="sparks">
            <figure>
                <Sparkline id="throughput-sparkline" label="Rows per minute, last hour" values=Signal::stored(rows) />
                <figcaption>"Rows per minute, last hour: " <span id="rows-last-hour">{group_digits(rows_hour)}</span></figcaption>
            </figure>
            <figure>
                <Sparkline
                    id="dead-letter-sparkline"
                    label="Dead letters per minute, last hour"
                    values=Signal::stored(dead)
                    class="bad"
                />
                <figcaption>
                    "Dead letters per minute, last hour: " <span id="dead-letters-last-hour">{group_digits(dead_hour)}</span>
                </figcaption>
            </figure>
        </div>
        <h2>"Partitions"</h2>
        <table id="partition-lag">
            <thead>
                <tr>
                    <th scope="col" class="num">"Partition"</th>
                    <th scope="col" class="num">"Committed offset"</th>
                    <th scope="col" class="num">"High watermark"</th>
                    <th scope="col" class="num">"Lag"</th>
                </tr>
            </thead>
            <tbody>
                {s
                    .partitions
                    .iter()
                    .map(|p| {
                        view! {
                            <tr id=format!("partition-{}", p.partition)>
                                <td class="num">{p.partition}</td>
                                <td class="num">{group_digits(p.committed_offset)}</td>
                                <td class="num">{p.high_watermark.map(group_digits).unwrap_or_else(|| "—".into())}</td>
                                <td class="num partition-lag">{p.lag.map(group_digits).unwrap_or_else(|| "—".into())}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn DeadLetters(list: DeadLetterList) -> impl IntoView {
    if list.rows.is_empty() {
        return view! { <p id="dead-letters-empty">"No message has gone to the dead-letter table."</p> }.into_any();
    }
    view! {
        <p class="hint">
            "The newest " {list.rows.len()} " of " <span id="dead-letter-total">{group_digits(list.total)}</span>
            " messages that could not be written, with why."
        </p>
        <table id="dead-letter-rows">
            <thead>
                <tr>
                    <th scope="col">"Partition / offset"</th>
                    <th scope="col">"Reason"</th>
                    <th scope="col">"Raw value"</th>
                </tr>
            </thead>
            <tbody>
                {list
                    .rows
                    .into_iter()
                    .map(|r| {
                        view! {
                            <tr class="dead-letter">
                                <td class="nowrap">
                                    {r.partition} " / " {r.offset}
                                    <br />
                                    <small>{format_time(&r.received_at)}</small>
                                </td>
                                <td>
                                    <span class="tag">{r.error_stage.clone()} " · " {r.error_kind.clone()}</span>
                                    <p class="dead-letter-reason">{r.error_message.clone()}</p>
                                </td>
                                <td>
                                    {r.key.clone().map(|k| view! { <p class="hint">"key: " <code>{k}</code></p> })}
                                    <pre class="raw">{r.value.as_deref().map(pretty_value).unwrap_or_else(|| "(tombstone)".into())}</pre>
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
