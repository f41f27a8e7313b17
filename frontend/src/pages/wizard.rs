//! The new-pipeline wizard: 1. Connect, 2. Destination, 3. Mapping, then
//! Review, which creates what is new and lands on the pipeline's page.
//!
//! A new connection is saved when leaving step 1: sampling the topic on step
//! 3 goes through a saved connection (`/connections/{id}/topics/{t}/sample`).
//! A new destination is saved on Review, just before the pipeline. Whatever
//! was saved is remembered, so a retry after an error creates nothing twice.

use icehouse_api::connections::{
    Connection, ConnectionTestResult, CreateConnectionRequest, SaslMechanism, SecurityProtocol,
};
use icehouse_api::destinations::{CreateDestinationRequest, Destination};
use icehouse_api::pagination::Page;
use icehouse_api::pipelines::{
    ColumnMapping, CreatePipelineRequest, DesiredState, Mapping, MessageFormat, PartitionField, PartitionTransform,
    Pipeline, StartPosition, TimestampFormat,
};
use icehouse_api::sample::{NestedMode, SampleRequest, SampleResponse, SuggestedColumn, MAX_SAMPLE};
use icehouse_api::validate::Validator;
use icehouse_api::wizard::WizardDefaults;
use icehouse_api::{ConnectionId, DestinationId, FieldError, Validate};
use leptos::ev::SubmitEvent;
use leptos::html;
use leptos::prelude::*;
use leptos::reactive::owner::Owner;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::{self, seg, ApiError};
use crate::components::{FieldErrors, FormError, LoadError, Loading, Session};
use crate::logic::{
    failure_headline, field_matches, group_digits, is_s3_uri, is_time_partitionable, misfit_note, parse_bootstrap,
    pretty_value, sanitize_identifier, WizardStep, COMMON_TYPES,
};

const NEW: &str = "new";

/// One editable column of the mapping.
#[derive(Clone)]
struct ColRow {
    key: u32,
    name: RwSignal<String>,
    ty: RwSignal<String>,
    path: RwSignal<String>,
    nullable: RwSignal<bool>,
    /// "" (ISO-8601) or a `TimestampFormat` in snake case.
    ts_format: RwSignal<String>,
    example: Option<String>,
    /// The suggested type and what does not fit it; shown while the type is
    /// still the suggested one.
    misfits: Option<(String, String)>,
}

impl ColRow {
    fn column(&self) -> ColumnMapping {
        let ty = self.ty.get_untracked().trim().to_string();
        let format = self.ts_format.get_untracked();
        ColumnMapping {
            name: self.name.get_untracked().trim().to_string(),
            timestamp_format: if is_time_partitionable(&ty, false) { parse_ts_format(&format) } else { None },
            column_type: ty,
            path: self.path.get_untracked().trim().to_string(),
            nullable: self.nullable.get_untracked(),
        }
    }
}

fn ts_format_str(f: Option<TimestampFormat>) -> &'static str {
    match f {
        None | Some(TimestampFormat::Iso8601) => "",
        Some(TimestampFormat::EpochSeconds) => "epoch_seconds",
        Some(TimestampFormat::EpochMillis) => "epoch_millis",
        Some(TimestampFormat::EpochMicros) => "epoch_micros",
    }
}

fn parse_ts_format(s: &str) -> Option<TimestampFormat> {
    match s {
        "epoch_seconds" => Some(TimestampFormat::EpochSeconds),
        "epoch_millis" => Some(TimestampFormat::EpochMillis),
        "epoch_micros" => Some(TimestampFormat::EpochMicros),
        _ => None,
    }
}

/// The wizard's whole state; every field is a signal, so it is `Copy`.
#[derive(Clone, Copy)]
struct W {
    owner: StoredValue<Owner>,
    step: RwSignal<WizardStep>,
    /// Shown above the step when a create call sent the user back to fix something.
    banner: RwSignal<Option<String>>,

    connections: RwSignal<Option<Result<Vec<Connection>, ApiError>>>,
    /// `NEW`, or the id of an existing connection.
    conn_choice: RwSignal<String>,
    conn_name: RwSignal<String>,
    conn_name_touched: RwSignal<bool>,
    bootstrap: RwSignal<String>,
    protocol: RwSignal<String>,
    mechanism: RwSignal<String>,
    sasl_user: RwSignal<String>,
    sasl_pass: RwSignal<String>,
    testing: RwSignal<bool>,
    test: RwSignal<Option<ConnectionTestResult>>,
    conn_error: RwSignal<Option<ApiError>>,
    saving_conn: RwSignal<bool>,
    topic_search: RwSignal<String>,
    topic: RwSignal<Option<String>>,

    destinations: RwSignal<Option<Result<Vec<Destination>, ApiError>>>,
    dest_choice: RwSignal<String>,
    dest_name: RwSignal<String>,
    dest_uri: RwSignal<String>,
    s3_endpoint: RwSignal<String>,
    s3_region: RwSignal<String>,
    s3_key_id: RwSignal<String>,
    s3_secret: RwSignal<String>,
    dest_error: RwSignal<Option<ApiError>>,
    namespace: RwSignal<String>,
    namespace_touched: RwSignal<bool>,
    table_name: RwSignal<String>,
    table_touched: RwSignal<bool>,
    pipeline_name: RwSignal<String>,
    pipeline_name_touched: RwSignal<bool>,
    start: RwSignal<String>,

    nested_struct: RwSignal<bool>,
    sampling: RwSignal<bool>,
    checking: RwSignal<bool>,
    /// Which (connection, topic, nested mode) the current columns were suggested for.
    sampled_for: RwSignal<Option<(String, String, bool)>>,
    sample: RwSignal<Option<SampleResponse>>,
    sample_error: RwSignal<Option<ApiError>>,
    rows: RwSignal<Vec<ColRow>>,
    next_key: StoredValue<u32>,
    part_transform: RwSignal<String>,
    part_column: RwSignal<String>,

    pipe_error: RwSignal<Option<ApiError>>,
    creating: RwSignal<bool>,
}

impl W {
    fn new() -> W {
        W {
            owner: StoredValue::new(Owner::current().expect("the wizard runs inside a component")),
            step: RwSignal::new(WizardStep::Connect),
            banner: RwSignal::new(None),
            connections: RwSignal::new(None),
            conn_choice: RwSignal::new(NEW.into()),
            conn_name: RwSignal::new(String::new()),
            conn_name_touched: RwSignal::new(false),
            bootstrap: RwSignal::new(String::new()),
            protocol: RwSignal::new("PLAINTEXT".into()),
            mechanism: RwSignal::new("SCRAM-SHA-512".into()),
            sasl_user: RwSignal::new(String::new()),
            sasl_pass: RwSignal::new(String::new()),
            testing: RwSignal::new(false),
            test: RwSignal::new(None),
            conn_error: RwSignal::new(None),
            saving_conn: RwSignal::new(false),
            topic_search: RwSignal::new(String::new()),
            topic: RwSignal::new(None),
            destinations: RwSignal::new(None),
            dest_choice: RwSignal::new(NEW.into()),
            dest_name: RwSignal::new("lake".into()),
            dest_uri: RwSignal::new(String::new()),
            s3_endpoint: RwSignal::new(String::new()),
            s3_region: RwSignal::new(String::new()),
            s3_key_id: RwSignal::new(String::new()),
            s3_secret: RwSignal::new(String::new()),
            dest_error: RwSignal::new(None),
            namespace: RwSignal::new("default".into()),
            namespace_touched: RwSignal::new(false),
            table_name: RwSignal::new(String::new()),
            table_touched: RwSignal::new(false),
            pipeline_name: RwSignal::new(String::new()),
            pipeline_name_touched: RwSignal::new(false),
            start: RwSignal::new("earliest".into()),
            nested_struct: RwSignal::new(false),
            sampling: RwSignal::new(false),
            checking: RwSignal::new(false),
            sampled_for: RwSignal::new(None),
            sample: RwSignal::new(None),
            sample_error: RwSignal::new(None),
            rows: RwSignal::new(Vec::new()),
            next_key: StoredValue::new(0),
            part_transform: RwSignal::new(String::new()),
            part_column: RwSignal::new(String::new()),
            pipe_error: RwSignal::new(None),
            creating: RwSignal::new(false),
        }
    }

    fn protocol(&self) -> SecurityProtocol {
        SecurityProtocol::parse(&self.protocol.get()).unwrap_or(SecurityProtocol::Plaintext)
    }

    fn conn_request(&self) -> CreateConnectionRequest {
        let protocol = self.protocol();
        let sasl = protocol.uses_sasl();
        CreateConnectionRequest {
            name: self.conn_name.get_untracked().trim().to_string(),
            bootstrap_servers: parse_bootstrap(&self.bootstrap.get_untracked()),
            security_protocol: protocol,
            sasl_mechanism: if sasl { SaslMechanism::parse(&self.mechanism.get_untracked()) } else { None },
            sasl_username: sasl.then(|| self.sasl_user.get_untracked().trim().to_string()),
            sasl_password: sasl.then(|| self.sasl_pass.get_untracked()),
        }
    }

    /// The id of the chosen, saved connection.
    fn connection_id(&self) -> Option<ConnectionId> {
        self.conn_choice.get_untracked().parse().ok()
    }

    fn destination_id(&self) -> Option<DestinationId> {
        self.dest_choice.get_untracked().parse().ok()
    }

    fn chosen_connection(&self) -> Option<Connection> {
        let id = self.conn_choice.get();
        self.connections.with(|c| {
            c.as_ref().and_then(|c| c.as_ref().ok()).and_then(|c| c.iter().find(|c| c.id.to_string() == id).cloned())
        })
    }

    fn chosen_destination(&self) -> Option<Destination> {
        let id = self.dest_choice.get();
        self.destinations.with(|d| {
            d.as_ref().and_then(|d| d.as_ref().ok()).and_then(|d| d.iter().find(|d| d.id.to_string() == id).cloned())
        })
    }

    fn columns(&self) -> Vec<ColumnMapping> {
        self.rows.with_untracked(|rows| rows.iter().map(ColRow::column).collect())
    }

    fn partition_by(&self) -> Vec<PartitionField> {
        let transform = match self.part_transform.get_untracked().as_str() {
            "year" => PartitionTransform::Year,
            "month" => PartitionTransform::Month,
            "day" => PartitionTransform::Day,
            "hour" => PartitionTransform::Hour,
            _ => return vec![],
        };
        vec![PartitionField { column: self.part_column.get_untracked(), transform }]
    }

    /// The pipeline as it would be created; placeholder ids for what is not saved yet.
    fn pipeline_request(&self) -> CreatePipelineRequest {
        let unsaved = "00000000-0000-0000-0000-000000000000";
        CreatePipelineRequest {
            name: self.pipeline_name.get_untracked().trim().to_string(),
            connection_id: self.connection_id().unwrap_or_else(|| unsaved.parse().expect("a uuid")),
            topic: self.topic.get_untracked().unwrap_or_default(),
            destination_id: self.destination_id().unwrap_or_else(|| unsaved.parse().expect("a uuid")),
            namespace: Some(self.namespace.get_untracked().trim().to_string()),
            table_name: self.table_name.get_untracked().trim().to_string(),
            format: MessageFormat::Json,
            mapping: Mapping { columns: self.columns() },
            partition_by: self.partition_by(),
            start_position: if self.start.get_untracked() == "latest" {
                StartPosition::Latest
            } else {
                StartPosition::Earliest
            },
            flush_interval_ms: 1000,
            desired_state: DesiredState::Running,
        }
    }

    fn dest_request(&self) -> CreateDestinationRequest {
        let warehouse_uri = self.dest_uri.get_untracked().trim().to_string();
        // The S3 settings go with an s3:// warehouse only (and blank is unset).
        let s3 = |field: RwSignal<String>| {
            let value = field.get_untracked().trim().to_string();
            (is_s3_uri(&warehouse_uri) && !value.is_empty()).then_some(value)
        };
        CreateDestinationRequest {
            name: self.dest_name.get_untracked().trim().to_string(),
            s3_endpoint: s3(self.s3_endpoint),
            s3_region: s3(self.s3_region),
            s3_access_key_id: s3(self.s3_key_id),
            s3_secret_access_key: s3(self.s3_secret),
            warehouse_uri,
            default_namespace: self.namespace.get_untracked().trim().to_string(),
        }
    }

    /// Replaces the columns by a suggestion made from `sampled` messages.
    fn set_rows(&self, suggestion: Vec<SuggestedColumn>, sampled: usize) {
        let rows = self.owner.get_value().with(|| {
            suggestion
                .into_iter()
                .map(|s| {
                    let note = misfit_note(s.misfits, sampled, &s.column.column_type, s.misfit_example.as_deref());
                    let misfits = note.map(|note| (s.column.column_type.clone(), note));
                    self.row(s.column, s.example, misfits)
                })
                .collect()
        });
        self.rows.set(rows);
        // A partition column that is gone is dropped.
        let part = self.part_column.get_untracked();
        if !self.rows.with_untracked(|r| r.iter().any(|r| r.name.get_untracked() == part)) {
            self.part_transform.set(String::new());
            self.part_column.set(String::new());
        }
    }

    fn row(&self, c: ColumnMapping, example: Option<String>, misfits: Option<(String, String)>) -> ColRow {
        let key = self.next_key.get_value();
        self.next_key.set_value(key + 1);
        ColRow {
            key,
            name: RwSignal::new(c.name),
            ty: RwSignal::new(c.column_type),
            path: RwSignal::new(c.path),
            nullable: RwSignal::new(c.nullable),
            ts_format: RwSignal::new(ts_format_str(c.timestamp_format).into()),
            example,
            misfits,
        }
    }

    fn add_row(&self) {
        let row = self.owner.get_value().with(|| {
            self.row(
                ColumnMapping {
                    name: String::new(),
                    column_type: "string".into(),
                    path: "$.".into(),
                    nullable: true,
                    timestamp_format: None,
                },
                None,
                None,
            )
        });
        self.rows.update(|r| r.push(row));
    }

    fn sample_path(&self) -> Option<String> {
        let cid = self.connection_id()?;
        let topic = self.topic.get_untracked()?;
        Some(format!("/connections/{cid}/topics/{}/sample", seg(&topic)))
    }

    /// Samples the topic and takes the suggested columns.
    fn resample(self) {
        let Some(path) = self.sample_path() else { return };
        let nested = self.nested_struct.get_untracked();
        let req = SampleRequest {
            limit: Some(MAX_SAMPLE),
            nested: if nested { NestedMode::Struct } else { NestedMode::Flatten },
            columns: None,
        };
        self.sampling.set(true);
        self.sample_error.set(None);
        spawn_local(async move {
            match api::post::<_, SampleResponse>(&path, &req).await {
                Ok(mut resp) => {
                    self.sampled_for.set(Some((
                        self.conn_choice.get_untracked(),
                        self.topic.get_untracked().unwrap_or_default(),
                        nested,
                    )));
                    let sampled = resp.messages.len();
                    self.set_rows(std::mem::take(&mut resp.suggestion), sampled);
                    self.sample.set(Some(resp));
                }
                Err(e) => self.sample_error.set(Some(e)),
            }
            self.sampling.set(false);
        });
    }

    /// Checks the sampled messages against the columns as edited.
    fn check(self) {
        let Some(path) = self.sample_path() else { return };
        let req = SampleRequest {
            limit: Some(MAX_SAMPLE),
            nested: if self.nested_struct.get_untracked() { NestedMode::Struct } else { NestedMode::Flatten },
            columns: Some(self.columns()),
        };
        self.checking.set(true);
        self.sample_error.set(None);
        spawn_local(async move {
            match api::post::<_, SampleResponse>(&path, &req).await {
                Ok(resp) => self.sample.set(Some(resp)),
                Err(e) => self.sample_error.set(Some(e)),
            }
            self.checking.set(false);
        });
    }

    fn go(&self, step: WizardStep) {
        self.step.set(step);
        if step == WizardStep::Mapping {
            let want = (
                self.conn_choice.get_untracked(),
                self.topic.get_untracked().unwrap_or_default(),
                self.nested_struct.get_untracked(),
            );
            if self.sampled_for.get_untracked().as_ref() != Some(&want) && !self.sampling.get_untracked() {
                self.resample();
            }
        }
    }
}

#[component]
pub fn Wizard() -> impl IntoView {
    if !Session::get().can_edit() {
        return view! {
            <section>
                <h1>"New pipeline"</h1>
                <p id="wizard-forbidden">"Viewers can look at everything but create nothing. Ask an admin for the editor role."</p>
            </section>
        }
            .into_any();
    }
    let w = W::new();
    // What the operator suggests (`icehouse dev`: a local warehouse and the
    // demo broker), unless the user typed something already.
    spawn_local(async move {
        if let Ok(d) = api::get::<WizardDefaults>("/wizard/defaults").await {
            if w.bootstrap.get_untracked().is_empty() && !d.bootstrap_servers.is_empty() {
                w.bootstrap.set(d.bootstrap_servers.join(", "));
            }
            if let Some(uri) = d.warehouse_uri.filter(|_| w.dest_uri.get_untracked().is_empty()) {
                w.dest_uri.set(uri);
            }
        }
    });
    spawn_local(async move {
        let result = api::get::<Page<Connection>>("/connections?limit=200").await.map(|p| p.items);
        w.connections.set(Some(result));
    });
    spawn_local(async move {
        let result = api::get::<Page<Destination>>("/destinations?limit=200").await.map(|p| p.items);
        if let Ok(list) = &result {
            if let Some(first) = list.first() {
                w.dest_choice.set(first.id.to_string());
                w.namespace.set(first.default_namespace.clone());
            }
        }
        w.destinations.set(Some(result));
    });
    // Names follow the topic until the user types their own.
    Effect::new(move |_| {
        if let Some(topic) = w.topic.get() {
            if !w.table_touched.get_untracked() {
                w.table_name.set(sanitize_identifier(&topic));
            }
            if !w.pipeline_name_touched.get_untracked() {
                w.pipeline_name.set(topic);
            }
        }
    });
    Effect::new(move |_| {
        let first = parse_bootstrap(&w.bootstrap.get()).into_iter().next().unwrap_or_default();
        if !w.conn_name_touched.get_untracked() {
            w.conn_name.set(first);
        }
    });

    let heading = NodeRef::<html::H2>::new();
    // Keyboard and screen-reader users land on the new step's heading.
    Effect::new(move |prev: Option<WizardStep>| {
        let step = w.step.get();
        if prev.is_some_and(|p| p != step) {
            if let Some(h) = heading.get() {
                let _ = h.focus();
            }
        }
        step
    });

    view! {
        <section class="wizard">
            <h1>"New pipeline"</h1>
            <ol class="steps" aria-label="Steps">
                {[WizardStep::Connect, WizardStep::Destination, WizardStep::Mapping, WizardStep::Review]
                    .into_iter()
                    .map(|s| {
                        view! {
                            <li
                                id=format!("wizard-step-{}", s.number())
                                class:current=move || w.step.get() == s
                                class:done={move || w.step.get() > s}
                                aria-current=move || (w.step.get() == s).then_some("step")
                            >
                                {format!("{}. {}", s.number(), s.title())}
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
            <h2 id="wizard-step-title" tabindex="-1" node_ref=heading>
                {move || {
                    let s = w.step.get();
                    if s == WizardStep::Review { "Review".to_string() } else { format!("{}. {}", s.number(), s.title()) }
                }}
            </h2>
            {move || w.banner.get().map(|b| view! { <p class="banner" id="wizard-error" role="alert">{b}</p> })}
            {move || match w.step.get() {
                WizardStep::Connect => view! { <StepConnect w /> }.into_any(),
                WizardStep::Destination => view! { <StepDestination w /> }.into_any(),
                WizardStep::Mapping => view! { <StepMapping w /> }.into_any(),
                WizardStep::Review => view! { <StepReview w /> }.into_any(),
            }}
        </section>
    }
        .into_any()
}

/// Back and Next; `next` runs on Next (it may move on by itself, later).
#[component]
fn Nav(
    w: W,
    #[prop(into)] busy: Signal<bool>,
    #[prop(into)] busy_text: String,
    #[prop(into)] can_next: Signal<bool>,
) -> impl IntoView {
    view! {
        <div class="wizard-nav">
            {move || {
                w.step
                    .get()
                    .prev()
                    .map(|prev| {
                        view! {
                            <button type="button" id="wizard-back" class="secondary" on:click=move |_| {
                                w.banner.set(None);
                                w.go(prev);
                            }>"Back"</button>
                        }
                    })
            }}
            <button type="submit" id="wizard-next" disabled=move || busy.get() || !can_next.get()>
                {move || if busy.get() { busy_text.clone() } else { "Next".to_string() }}
            </button>
        </div>
    }
}

// --- 1. Connect -------------------------------------------------------------------

#[component]
fn StepConnect(w: W) -> impl IntoView {
    let test = move |_| {
        w.test.set(None);
        w.conn_error.set(None);
        let existing = w.connection_id();
        if existing.is_none() {
            if let Err(fields) = w.conn_request().validate() {
                w.conn_error.set(Some(ApiError::from_fields(fields)));
                return;
            }
        }
        w.testing.set(true);
        let req = w.conn_request();
        spawn_local(async move {
            let result = match existing {
                Some(id) => api::post_action::<ConnectionTestResult>(&format!("/connections/{id}/test")).await,
                None => api::post::<_, ConnectionTestResult>("/connections/test", &req).await,
            };
            match result {
                Ok(r) => w.test.set(Some(r)),
                Err(e) => w.conn_error.set(Some(e)),
            }
            w.testing.set(false);
        });
    };

    // Next: a new connection is saved first (step 3 samples through it).
    let next = move |ev: SubmitEvent| {
        ev.prevent_default();
        w.banner.set(None);
        if w.topic.get_untracked().is_none() {
            w.conn_error.set(Some(ApiError::field("topic", "Pick a topic (test the connection to list them).")));
            return;
        }
        if w.connection_id().is_some() {
            w.go(WizardStep::Destination);
            return;
        }
        let req = w.conn_request();
        if let Err(fields) = req.validate() {
            w.conn_error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        w.saving_conn.set(true);
        w.conn_error.set(None);
        spawn_local(async move {
            match api::post::<_, Connection>("/connections", &req).await {
                Ok(c) => {
                    w.conn_choice.set(c.id.to_string());
                    w.connections.update(|list| match list {
                        Some(Ok(list)) => list.push(c),
                        other => *other = Some(Ok(vec![c])),
                    });
                    w.go(WizardStep::Destination);
                }
                Err(e) => w.conn_error.set(Some(e)),
            }
            w.saving_conn.set(false);
        });
    };

    let is_new = move || w.conn_choice.get() == NEW;
    let has_existing = move || w.connections.with(|c| matches!(c, Some(Ok(list)) if !list.is_empty()));
    let choose = move |choice: String| {
        w.conn_choice.set(choice);
        w.test.set(None);
        w.topic.set(None);
        w.conn_error.set(None);
    };

    view! {
        <form on:submit=next novalidate>
            <Show when=has_existing>
                <fieldset class="choice">
                    <legend>"Kafka cluster"</legend>
                    <label for="conn-existing">"Use a saved connection"</label>
                    <select id="conn-existing" on:change=move |ev| choose(event_target_value(&ev)) prop:value=move || w.conn_choice.get()>
                        <option value=NEW selected=move || w.conn_choice.get() == NEW>
                            "New connection…"
                        </option>
                        {move || {
                            w.connections
                                .get()
                                .and_then(Result::ok)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|c| {
                                    let id = c.id.to_string();
                                    let selected = id.clone();
                                    view! {
                                        <option value=id selected=move || w.conn_choice.get() == selected>
                                            {format!("{} ({})", c.name, c.bootstrap_servers.join(", "))}
                                        </option>
                                    }
                                })
                                .collect_view()
                        }}
                    </select>
                </fieldset>
            </Show>
            {move || w.connections.get().and_then(Result::err).map(|e| view! { <LoadError error=e /> })}
            <Show when=is_new>
                <label for="conn-bootstrap">"Bootstrap servers"</label>
                <input
                    id="conn-bootstrap"
                    type="text"
                    placeholder="broker-1:9092, broker-2:9092"
                    autocomplete="off"
                    spellcheck="false"
                    aria-describedby="conn-bootstrap-hint"
                    bind:value=w.bootstrap
                />
                <p class="hint" id="conn-bootstrap-hint">"host:port of one or more brokers, separated by commas."</p>
                <FieldErrors error=w.conn_error field="bootstrap_servers" />
                <TestFailure w />

                <label for="conn-name">"Connection name"</label>
                <input id="conn-name" type="text" autocomplete="off" bind:value=w.conn_name on:input=move |_| w.conn_name_touched.set(true) />
                <FieldErrors error=w.conn_error field="name" />

                <label for="conn-protocol">"Security protocol"</label>
                <select id="conn-protocol" on:change=move |ev| w.protocol.set(event_target_value(&ev)) prop:value=move || w.protocol.get()>
                    {["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
                        .into_iter()
                        .map(|p| view! { <option value=p selected=move || w.protocol.get() == p>{p}</option> })
                        .collect_view()}
                </select>
                <FieldErrors error=w.conn_error field="security_protocol" />

                <Show when=move || w.protocol().uses_sasl()>
                    <fieldset class="sasl">
                        <legend>"SASL credentials"</legend>
                        <label for="conn-mechanism">"Mechanism"</label>
                        <select id="conn-mechanism" on:change=move |ev| w.mechanism.set(event_target_value(&ev)) prop:value=move || w.mechanism.get()>
                            {["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
                                .into_iter()
                                .map(|m| view! { <option value=m selected=move || w.mechanism.get() == m>{m}</option> })
                                .collect_view()}
                        </select>
                        <FieldErrors error=w.conn_error field="sasl_mechanism" />
                        <label for="conn-username">"User name"</label>
                        <input id="conn-username" type="text" autocomplete="off" bind:value=w.sasl_user />
                        <FieldErrors error=w.conn_error field="sasl_username" />
                        <label for="conn-password">"Password"</label>
                        <input id="conn-password" type="password" autocomplete="new-password" bind:value=w.sasl_pass />
                        <FieldErrors error=w.conn_error field="sasl_password" />
                    </fieldset>
                </Show>
            </Show>
            <Show when=move || !is_new()>
                <TestFailure w />
            </Show>

            <p>
                <button type="button" id="conn-test" class="secondary" on:click=test disabled=move || w.testing.get()>
                    {move || if w.testing.get() { "Testing…" } else { "Test connection" }}
                </button>
            </p>
            <FormError
                error=w.conn_error
                shown=&["bootstrap_servers", "name", "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "topic"]
                id="conn-error"
            />
            <TestSuccess w />
            <FieldErrors error=w.conn_error field="topic" />
            <FieldErrors error=w.pipe_error field="topic" />
            <FieldErrors error=w.pipe_error field="connection_id" />
            <Nav w busy=w.saving_conn busy_text="Saving connection…" can_next=Signal::derive(move || w.topic.get().is_some()) />
        </form>
    }
}

/// A failed connection test, next to the bootstrap field.
#[component]
fn TestFailure(w: W) -> impl IntoView {
    move || match w.test.get() {
        Some(ConnectionTestResult::Failed { failure, elapsed_ms }) => Some(view! {
            <p class="field-error" data-field="bootstrap_servers" id="conn-test-error" role="alert">
                <strong>{failure_headline(failure.kind)}</strong>
                " "
                {failure.message}
                <small>{format!(" ({} after {elapsed_ms} ms)", failure.kind.as_str())}</small>
            </p>
        }),
        _ => None,
    }
}

#[component]
fn TestSuccess(w: W) -> impl IntoView {
    move || match w.test.get() {
        Some(ConnectionTestResult::Ok { brokers, topics, elapsed_ms }) => {
            let broker_list =
                brokers.iter().map(|b| format!("{}:{} (id {})", b.host, b.port, b.id)).collect::<Vec<_>>().join(", ");
            let count = topics.len();
            Some(view! {
                <p class="ok" id="conn-test-result" role="status">
                    {format!(
                        "Connected in {elapsed_ms} ms. {} broker{}: {broker_list}. {count} topic{}.",
                        brokers.len(),
                        if brokers.len() == 1 { "" } else { "s" },
                        if count == 1 { "" } else { "s" },
                    )}
                </p>
                <TopicPicker w topics=topics.into_iter().map(|t| (t.name, t.partitions)).collect() />
            })
        }
        _ => None,
    }
}

#[component]
fn TopicPicker(w: W, topics: Vec<(String, usize)>) -> impl IntoView {
    let topics = StoredValue::new(topics);
    view! {
        <fieldset class="topics">
            <legend>"Topic"</legend>
            <label for="topic-search">"Search topics"</label>
            <input id="topic-search" type="search" autocomplete="off" placeholder="Type to filter" bind:value=w.topic_search />
            <div id="topic-list" class="topic-list" role="group" aria-label="Topics">
                {move || {
                    let needle = w.topic_search.get().to_lowercase();
                    let shown: Vec<(String, usize)> = topics
                        .with_value(|t| t.iter().filter(|(name, _)| name.to_lowercase().contains(&needle)).cloned().collect());
                    if shown.is_empty() {
                        return view! { <p class="hint" id="topic-none">"No topic matches."</p> }.into_any();
                    }
                    shown
                        .into_iter()
                        .map(|(name, partitions)| {
                            let pick = name.clone();
                            let is = name.clone();
                            view! {
                                <button
                                    type="button"
                                    id=format!("topic-{name}")
                                    class="topic"
                                    data-topic=name.clone()
                                    aria-pressed=move || (w.topic.get().as_deref() == Some(is.as_str())).to_string()
                                    on:click=move |_| {
                                        w.topic.set(Some(pick.clone()));
                                        w.conn_error.set(None);
                                    }
                                >
                                    {name.clone()}
                                    <small>{format!(" {partitions} partition{}", if partitions == 1 { "" } else { "s" })}</small>
                                </button>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </div>
            <p id="selected-topic" aria-live="polite">
                {move || match w.topic.get() {
                    Some(t) => format!("Selected: {t}"),
                    None => "No topic selected.".into(),
                }}
            </p>
        </fieldset>
    }
}

// --- 2. Destination ---------------------------------------------------------------

#[component]
fn StepDestination(w: W) -> impl IntoView {
    let is_new = move || w.dest_choice.get() == NEW;
    let next = move |ev: SubmitEvent| {
        ev.prevent_default();
        w.banner.set(None);
        let mut fields = step2_errors(&w);
        let mut dest = vec![];
        if w.destination_id().is_none() {
            if let Err(errs) = w.dest_request().validate() {
                // The namespace input edits the destination's default namespace too.
                for e in errs {
                    if e.field == "default_namespace" {
                        fields.push(FieldError::new("namespace", e.message));
                    } else {
                        dest.push(e);
                    }
                }
            }
        }
        w.dest_error.set((!dest.is_empty()).then(|| ApiError::from_fields(dest.clone())));
        w.pipe_error.set((!fields.is_empty()).then(|| ApiError::from_fields(fields.clone())));
        if fields.is_empty() && dest.is_empty() {
            w.go(WizardStep::Mapping);
        }
    };
    let choose = move |choice: String| {
        w.dest_choice.set(choice);
        w.dest_error.set(None);
        if let Some(d) = w.chosen_destination() {
            if !w.namespace_touched.get_untracked() {
                w.namespace.set(d.default_namespace);
            }
        }
    };

    view! {
        <form on:submit=next novalidate>
            <fieldset>
                <legend>"Iceberg warehouse"</legend>
                {move || w.destinations.get().and_then(Result::err).map(|e| view! { <LoadError error=e /> })}
                <label for="dest-select">"Destination"</label>
                <select id="dest-select" on:change=move |ev| choose(event_target_value(&ev)) prop:value=move || w.dest_choice.get()>
                    {move || {
                        w.destinations
                            .get()
                            .and_then(Result::ok)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|d| {
                                let id = d.id.to_string();
                                let selected = id.clone();
                                view! {
                                    <option value=id selected=move || w.dest_choice.get() == selected>
                                        {format!("{} ({})", d.name, d.warehouse_uri)}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                    <option value=NEW selected=move || w.dest_choice.get() == NEW>
                        "New destination…"
                    </option>
                </select>
                <FieldErrors error=w.pipe_error field="destination_id" />
                <Show when=is_new>
                    <label for="dest-name">"Destination name"</label>
                    <input id="dest-name" type="text" autocomplete="off" bind:value=w.dest_name />
                    <FieldErrors error=w.dest_error field="name" />
                    <label for="dest-uri">"Warehouse URI"</label>
                    <input
                        id="dest-uri"
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        placeholder="file:///var/tmp/icehouse-warehouse"
                        aria-describedby="dest-uri-hint"
                        bind:value=w.dest_uri
                    />
                    <p class="hint" id="dest-uri-hint">
                        "Where the table files go: " <code>"s3://bucket/prefix"</code> " in an S3 or S3-compatible store, or "
                        <code>"file:///absolute/path"</code> " on the server's disk (where the server allows it)."
                    </p>
                    <FieldErrors error=w.dest_error field="warehouse_uri" />
                    <Show when=move || is_s3_uri(w.dest_uri.get().trim())>
                        <div class="fields">
                            <div>
                                <label for="s3-endpoint">"S3 endpoint (blank for AWS)"</label>
                                <input id="s3-endpoint" type="text" inputmode="url" autocomplete="off" spellcheck="false" placeholder="http://minio:9000" bind:value=w.s3_endpoint />
                                <FieldErrors error=w.dest_error field="s3_endpoint" />
                            </div>
                            <div>
                                <label for="s3-region">"Region"</label>
                                <input id="s3-region" type="text" autocomplete="off" spellcheck="false" placeholder="us-east-1" bind:value=w.s3_region />
                                <FieldErrors error=w.dest_error field="s3_region" />
                            </div>
                        </div>
                        <div class="fields">
                            <div>
                                <label for="s3-key-id">"Access key id"</label>
                                <input id="s3-key-id" type="text" autocomplete="off" spellcheck="false" bind:value=w.s3_key_id />
                                <FieldErrors error=w.dest_error field="s3_access_key_id" />
                            </div>
                            <div>
                                <label for="s3-secret">"Secret access key"</label>
                                <input id="s3-secret" type="password" autocomplete="new-password" bind:value=w.s3_secret />
                                <FieldErrors error=w.dest_error field="s3_secret_access_key" />
                            </div>
                        </div>
                    </Show>
                    <FormError
                        error=w.dest_error
                        shown=&["name", "warehouse_uri", "namespace", "s3_endpoint", "s3_region", "s3_access_key_id", "s3_secret_access_key"]
                        id="dest-error"
                    />
                </Show>
            </fieldset>

            <fieldset>
                <legend>"Table"</legend>
                <div class="fields">
                    <div>
                        <label for="namespace">"Namespace"</label>
                        <input id="namespace" type="text" autocomplete="off" spellcheck="false" bind:value=w.namespace on:input=move |_| w.namespace_touched.set(true) />
                        <FieldErrors error=w.pipe_error field="namespace" />
                        <FieldErrors error=w.dest_error field="namespace" />
                    </div>
                    <div>
                        <label for="table-name">"Table name"</label>
                        <input
                            id="table-name"
                            type="text"
                            autocomplete="off"
                            spellcheck="false"
                            aria-describedby="table-name-hint"
                            bind:value=w.table_name
                            on:input=move |_| {
                                w.table_touched.set(true);
                                clear_field(w.pipe_error, "table_name");
                            }
                        />
                        <p class="hint" id="table-name-hint">"Lower-case letters, digits and _."</p>
                        <FieldErrors error=w.pipe_error field="table_name" />
                    </div>
                </div>
                <label for="pipeline-name">"Pipeline name"</label>
                <input id="pipeline-name" type="text" autocomplete="off" bind:value=w.pipeline_name on:input=move |_| {
                    w.pipeline_name_touched.set(true);
                    clear_field(w.pipe_error, "name");
                } />
                <FieldErrors error=w.pipe_error field="name" />
            </fieldset>

            <fieldset class="radios">
                <legend>"Start from"</legend>
                <input
                    type="radio"
                    id="start-earliest"
                    name="start"
                    value="earliest"
                    prop:checked=move || w.start.get() == "earliest"
                    on:change=move |_| w.start.set("earliest".into())
                />
                <label for="start-earliest">"The oldest message the topic still holds"</label>
                <br />
                <input
                    type="radio"
                    id="start-latest"
                    name="start"
                    value="latest"
                    prop:checked=move || w.start.get() == "latest"
                    on:change=move |_| w.start.set("latest".into())
                />
                <label for="start-latest">"Only messages produced from now on"</label>
                <FieldErrors error=w.pipe_error field="start_position" />
            </fieldset>
            <FormError
                error=w.pipe_error
                shown=&["destination_id", "namespace", "table_name", "name", "start_position", "topic", "connection_id", "mapping", "partition_by"]
            />
            <Nav w busy=Signal::stored(false) busy_text="" can_next=Signal::stored(true) />
        </form>
    }
}

/// Drops the errors of `field` once its input is edited (they are stale).
fn clear_field(error: RwSignal<Option<ApiError>>, field: &str) {
    if error.with_untracked(|e| e.as_ref().is_some_and(|e| e.fields.iter().any(|f| f.field == field))) {
        error.update(|e| {
            if let Some(inner) = e {
                inner.fields.retain(|f| f.field != field);
                // Without fields the general message would show: nothing is left to say.
                if inner.fields.is_empty() {
                    *e = None;
                }
            }
        });
    }
}

/// Step 2's checks of the pipeline's own fields.
fn step2_errors(w: &W) -> Vec<FieldError> {
    let mut v = Validator::new();
    v.identifier("namespace", w.namespace.get_untracked().trim());
    let table = w.table_name.get_untracked();
    v.identifier("table_name", table.trim());
    if table.ends_with("_dead_letter") {
        v.error("table_name", "must not end in _dead_letter (reserved for dead-letter tables)");
    }
    v.name("name", w.pipeline_name.get_untracked().trim());
    v.finish().err().unwrap_or_default()
}

// --- 3. Mapping -------------------------------------------------------------------

#[component]
fn StepMapping(w: W) -> impl IntoView {
    let next = move |ev: SubmitEvent| {
        ev.prevent_default();
        w.banner.set(None);
        let errors: Vec<FieldError> = w
            .pipeline_request()
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| WizardStep::of_pipeline_field(&e.field) == WizardStep::Mapping)
            .collect();
        if errors.is_empty() {
            w.pipe_error.set(None);
            w.go(WizardStep::Review);
        } else {
            w.pipe_error.set(Some(ApiError::from_fields(errors)));
        }
    };
    let temporal = move || {
        let hourly = w.part_transform.get() == "hour";
        w.rows.with(|rows| {
            rows.iter()
                .map(|r| (r.name.get(), r.ty.get()))
                .filter(|(n, t)| !n.is_empty() && is_time_partitionable(t, hourly))
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        })
    };
    // The partition column follows the choices that are left.
    Effect::new(move |_| {
        let options = temporal();
        let current = w.part_column.get();
        let wanted =
            if options.contains(&current) { current.clone() } else { options.first().cloned().unwrap_or_default() };
        // Setting a signal notifies even with an equal value: only set on change.
        if wanted != current {
            w.part_column.set(wanted);
        }
    });

    view! {
        <form on:submit=next novalidate>
            <div class="mapping-tools">
                <input
                    type="checkbox"
                    id="nested-struct"
                    prop:checked=move || w.nested_struct.get()
                    on:change=move |ev| {
                        w.nested_struct.set(event_target_checked(&ev));
                        w.resample();
                    }
                    disabled=move || w.sampling.get()
                />
                <label for="nested-struct">
                    "Keep nested objects as structs (otherwise " <code>"{\"a\":{\"b\":1}}"</code> " becomes column "
                    <code>"a_b"</code> "). Changing this samples again and replaces the columns."
                </label>
            </div>
            <p>
                <button type="button" id="mapping-resample" class="secondary" on:click=move |_| w.resample() disabled=move || w.sampling.get()>
                    {move || if w.sampling.get() { "Sampling…" } else { "Sample again" }}
                </button>
                " "
                <button type="button" id="mapping-check" class="secondary" on:click=move |_| w.check() disabled=move || w.checking.get() || w.sampling.get()>
                    {move || if w.checking.get() { "Checking…" } else { "Check messages against these columns" }}
                </button>
            </p>
            <FormError error=w.sample_error id="sample-error" />
            <div class="mapping">
                <div class="mapping-columns">
                    <h3>"Columns"</h3>
                    {move || (w.sampling.get() && w.rows.with(Vec::is_empty)).then(|| view! { <Loading what="a sample of the topic" /> })}
                    <ColumnTable w />
                    <button type="button" id="mapping-add" class="secondary small" on:click=move |_| w.add_row()>
                        "Add column"
                    </button>
                    <FieldErrors error=w.pipe_error field="mapping.columns" exact=true />
                    <fieldset class="partitioning">
                        <legend>"Partitioning"</legend>
                        <div class="fields">
                            <div>
                                <label for="partition-transform">"Partition by"</label>
                                <select
                                    id="partition-transform"
                                    on:change=move |ev| w.part_transform.set(event_target_value(&ev))
                                    prop:value=move || w.part_transform.get()
                                >
                                    {[("", "Not partitioned"), ("hour", "Hour of"), ("day", "Day of"), ("month", "Month of"), ("year", "Year of")]
                                        .into_iter()
                                        .map(|(v, t)| view! { <option value=v selected=move || w.part_transform.get() == v>{t}</option> })
                                        .collect_view()}
                                </select>
                            </div>
                            <Show when=move || !w.part_transform.get().is_empty()>
                                <div>
                                    <label for="partition-column">"Timestamp column"</label>
                                    <select
                                        id="partition-column"
                                        on:change=move |ev| w.part_column.set(event_target_value(&ev))
                                        prop:value=move || w.part_column.get()
                                    >
                                        {move || {
                                            temporal()
                                                .into_iter()
                                                .map(|n| {
                                                    let sel = n.clone();
                                                    view! { <option value=n.clone() selected=move || w.part_column.get() == sel>{n.clone()}</option> }
                                                })
                                                .collect_view()
                                        }}
                                    </select>
                                    {move || temporal().is_empty().then(|| view! { <p class="hint">"No column has a date or timestamp type."</p> })}
                                </div>
                            </Show>
                        </div>
                        <FieldErrors error=w.pipe_error field="partition_by" />
                    </fieldset>
                </div>
                <div class="mapping-messages">
                    <h3>"Sampled messages"</h3>
                    <SampleMessages w />
                </div>
            </div>
            <FormError error=w.pipe_error shown=&["mapping", "partition_by"] />
            <Nav w busy=w.sampling busy_text="Sampling…" can_next=Signal::derive(move || !w.rows.with(Vec::is_empty)) />
        </form>
        <datalist id="iceberg-types">{COMMON_TYPES.iter().map(|t| view! { <option value=*t></option> }).collect_view()}</datalist>
    }
}

#[component]
fn ColumnTable(w: W) -> impl IntoView {
    let index_of = move |key: u32| w.rows.with(|rows| rows.iter().position(|r| r.key == key).unwrap_or(0));
    view! {
        <table id="mapping-table" class="mapping-table">
            <thead>
                <tr>
                    <th scope="col">"Column"</th>
                    <th scope="col">"Iceberg type"</th>
                    <th scope="col">"Source path"</th>
                    <th scope="col">"Nullable"</th>
                    <th scope="col">"Example"</th>
                    <th scope="col">
                        <span class="sr-only">"Remove"</span>
                    </th>
                </tr>
            </thead>
            <tbody>
                <For each=move || w.rows.get() key=|r| r.key let:row>
                    {
                        let key = row.key;
                        let i = move || index_of(key);
                        let id = move |what: &str| format!("mapping-{}-{what}", i());
                        let errs = move |what: &'static str| {
                            move || {
                                let field = format!("mapping.columns[{}].{what}", i());
                                w.pipe_error
                                    .with(|e| e.as_ref().map(|e| e.fields_matching(&field)).unwrap_or_default())
                                    .into_iter()
                                    .map(|fe| view! { <p class="field-error" data-field=fe.field>{fe.message}</p> })
                                    .collect_view()
                            }
                        };
                        let row_errors = move || {
                            let prefix = format!("mapping.columns[{}]", i());
                            w.pipe_error.with(|e| {
                                e.as_ref()
                                    .map(|e| e.fields.iter().any(|f| field_matches(&f.field, &prefix)))
                                    .unwrap_or(false)
                            })
                        };
                        let temporal = move || is_time_partitionable(&row.ty.get(), false);
                        let misfits = row.misfits.clone();
                        let misfit_note = move || {
                            misfits
                                .as_ref()
                                .filter(|(suggested, _)| row.ty.get().trim() == suggested.as_str())
                                .map(|(_, note)| view! { <p class="col-misfits warning" id=id("misfits")>{note.clone()}</p> })
                        };
                        view! {
                            <tr id=move || format!("mapping-row-{}", i()) class:invalid=row_errors>
                                <td>
                                    <label class="sr-only" for=move || id("name")>{move || format!("Name of column {}", i() + 1)}</label>
                                    <input id=move || id("name") class="col-name" type="text" on:input=move |_| clear_field(w.pipe_error, &format!("mapping.columns[{}].name", i())) spellcheck="false" bind:value=row.name />
                                    {errs("name")}
                                </td>
                                <td>
                                    <label class="sr-only" for=move || id("type")>{move || format!("Type of column {}", i() + 1)}</label>
                                    <input id=move || id("type") class="col-type" type="text" on:input=move |_| clear_field(w.pipe_error, &format!("mapping.columns[{}].type", i())) list="iceberg-types" spellcheck="false" bind:value=row.ty />
                                    {errs("type")}
                                    {misfit_note}
                                    <Show when=temporal>
                                        <label class="sr-only" for=move || id("format")>{move || format!("Time format of column {}", i() + 1)}</label>
                                        <select
                                            id=move || id("format")
                                            class="col-format"
                                            on:change=move |ev| row.ts_format.set(event_target_value(&ev))
                                            prop:value=move || row.ts_format.get()
                                        >
                                            {[("", "ISO-8601 text"), ("epoch_seconds", "epoch seconds"), ("epoch_millis", "epoch ms"), ("epoch_micros", "epoch µs")]
                                                .into_iter()
                                                .map(|(v, t)| view! { <option value=v selected=move || row.ts_format.get() == v>{t}</option> })
                                                .collect_view()}
                                        </select>
                                        {errs("timestamp_format")}
                                    </Show>
                                </td>
                                <td>
                                    <label class="sr-only" for=move || id("path")>{move || format!("Source path of column {}", i() + 1)}</label>
                                    <input id=move || id("path") class="col-path" type="text" on:input=move |_| clear_field(w.pipe_error, &format!("mapping.columns[{}].path", i())) spellcheck="false" bind:value=row.path />
                                    {errs("path")}
                                </td>
                                <td class="center">
                                    <label class="sr-only" for=move || id("nullable")>{move || format!("Column {} may be null", i() + 1)}</label>
                                    <input id=move || id("nullable") class="col-nullable" type="checkbox" bind:checked=row.nullable />
                                </td>
                                <td class="col-example">
                                    <code>{row.example.clone().unwrap_or_default()}</code>
                                </td>
                                <td>
                                    <button
                                        type="button"
                                        class="danger small col-remove"
                                        id=move || id("remove")
                                        aria-label=move || format!("Remove column {}", i() + 1)
                                        on:click=move |_| w.rows.update(|rows| rows.retain(|r| r.key != key))
                                    >
                                        "Remove"
                                    </button>
                                </td>
                            </tr>
                        }
                    }
                </For>
            </tbody>
        </table>
    }
}

#[component]
fn SampleMessages(w: W) -> impl IntoView {
    move || {
        let Some(sample) = w.sample.get() else {
            return (!w.sampling.get())
                .then(|| view! { <p class="hint">"Messages appear here once the topic is sampled."</p> })
                .into_any();
        };
        if sample.messages.is_empty() {
            return view! { <p id="sample-empty">"The topic holds no messages yet; add columns by hand."</p> }
                .into_any();
        }
        let n = sample.messages.len();
        view! {
            <p id="mapping-misfits" class:bad={sample.misfits > 0}>
                {if sample.misfits == 0 {
                    format!("All {n} sampled messages fit the columns.")
                } else {
                    format!("{} of {n} sampled messages do not fit and would go to the dead-letter table.", sample.misfits)
                }}
            </p>
            <ol id="sample-messages" class="messages">
                {sample
                    .messages
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let misfit = m.problem.is_some();
                        view! {
                            <li id=format!("sample-message-{i}") class="message" class:misfit=misfit>
                                <small>
                                    {format!("partition {} · offset {}", m.partition, group_digits(m.offset))}
                                    {m.timestamp.map(|t| format!(" · {}", crate::logic::format_time(&t)))}
                                    {m.key.clone().map(|k| format!(" · key {k}"))}
                                </small>
                                {m.problem.clone().map(|p| view! { <p class="message-problem">{p}</p> })}
                                <pre class="raw">{m.value.as_deref().map(pretty_value).unwrap_or_else(|| "(tombstone)".into())}</pre>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        }
            .into_any()
    }
}

// --- Review -------------------------------------------------------------------------

#[component]
fn StepReview(w: W) -> impl IntoView {
    let navigate = use_navigate();
    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        w.banner.set(None);
        w.pipe_error.set(None);
        w.dest_error.set(None);
        w.creating.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let outcome = create_all(w).await;
            w.creating.set(false);
            match outcome {
                Ok(p) => navigate(&format!("/pipelines/{}", p.id), Default::default()),
                Err((step, message)) => {
                    w.banner.set(Some(message));
                    w.go(step);
                }
            }
        });
    };
    let req = w.pipeline_request();
    let conn = w.chosen_connection();
    let dest = w.chosen_destination();
    let partition = req
        .partition_by
        .first()
        .map(|p| format!("{} of {}", format!("{:?}", p.transform).to_lowercase(), p.column))
        .unwrap_or_else(|| "not partitioned".into());
    let misfits = w.sample.with_untracked(|s| s.as_ref().map(|s| (s.misfits, s.messages.len())));
    view! {
        <form on:submit=create novalidate>
            <dl class="review" id="review">
                <dt>"Kafka"</dt>
                <dd id="review-connection">
                    {conn.map(|c| format!("{} — {} ({})", c.name, c.bootstrap_servers.join(", "), c.security_protocol.as_str()))}
                </dd>
                <dt>"Topic"</dt>
                <dd id="review-topic">{req.topic.clone()}</dd>
                <dt>"Destination"</dt>
                <dd id="review-destination">
                    {match dest {
                        Some(d) => format!("{} — {}", d.name, d.warehouse_uri),
                        None => format!("new: {} — {}", w.dest_name.get_untracked(), w.dest_uri.get_untracked()),
                    }}
                </dd>
                <dt>"Table"</dt>
                <dd id="review-table">{format!("{}.{}", req.namespace.clone().unwrap_or_default(), req.table_name)}</dd>
                <dt>"Pipeline"</dt>
                <dd id="review-name">{req.name.clone()}</dd>
                <dt>"Start from"</dt>
                <dd id="review-start">
                    {match req.start_position {
                        StartPosition::Earliest => "the oldest message",
                        StartPosition::Latest => "new messages only",
                    }}
                </dd>
                <dt>"Partitioning"</dt>
                <dd id="review-partitioning">{partition}</dd>
                <dt>"Columns"</dt>
                <dd>
                    <table id="review-columns">
                        <thead>
                            <tr>
                                <th scope="col">"Column"</th>
                                <th scope="col">"Type"</th>
                                <th scope="col">"Path"</th>
                                <th scope="col">"Nullable"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {req
                                .mapping
                                .columns
                                .iter()
                                .map(|c| {
                                    view! {
                                        <tr>
                                            <td>{c.name.clone()}</td>
                                            <td>
                                                <code>{c.column_type.clone()}</code>
                                                {c.timestamp_format.map(|f| format!(" ({})", ts_format_str(Some(f)).replace('_', " ")))}
                                            </td>
                                            <td>
                                                <code>{c.path.clone()}</code>
                                            </td>
                                            <td>{if c.nullable { "yes" } else { "no" }}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                </dd>
            </dl>
            {misfits
                .filter(|(bad, _)| *bad > 0)
                .map(|(bad, n)| {
                    view! {
                        <p class="warning" id="review-misfits">
                            {format!("{bad} of {n} sampled messages did not fit the columns when last checked: they would go to the dead-letter table.")}
                        </p>
                    }
                })}
            <FormError error=w.pipe_error shown=&[] id="create-error" />
            <div class="wizard-nav">
                <button type="button" id="wizard-back" class="secondary" on:click=move |_| w.go(WizardStep::Mapping)>
                    "Back"
                </button>
                <button type="submit" id="create-pipeline" disabled=move || w.creating.get()>
                    {move || if w.creating.get() { "Creating…" } else { "Create pipeline" }}
                </button>
            </div>
        </form>
    }
}

/// Saves the new destination (if any) and the pipeline. On failure: the step
/// to go back to and what to say there; the errors are in the wizard's signals.
async fn create_all(w: W) -> Result<Pipeline, (WizardStep, String)> {
    if w.connection_id().is_none() {
        return Err((WizardStep::Connect, "Choose or save a connection first.".into()));
    }
    if w.destination_id().is_none() {
        match api::post::<_, Destination>("/destinations", &w.dest_request()).await {
            Ok(d) => {
                w.dest_choice.set(d.id.to_string());
                w.destinations.update(|list| match list {
                    Some(Ok(list)) => list.push(d),
                    other => *other = Some(Ok(vec![d])),
                });
            }
            Err(mut e) => {
                // The namespace input edits the new destination's default namespace.
                for f in &mut e.fields {
                    if f.field == "default_namespace" {
                        f.field = "namespace".into();
                    }
                }
                let message = if e.fields.is_empty() {
                    format!("The destination was not created: {}", e.message)
                } else {
                    "The destination was not created: fix the fields marked below, then go on to Review again.".into()
                };
                w.dest_error.set(Some(e));
                return Err((WizardStep::Destination, message));
            }
        }
    }
    match api::post::<_, Pipeline>("/pipelines", &w.pipeline_request()).await {
        Ok(p) => Ok(p),
        Err(e) => {
            let step = e.fields.first().map(|f| WizardStep::of_pipeline_field(&f.field)).unwrap_or(WizardStep::Review);
            let message = if e.fields.is_empty() {
                format!("The pipeline was not created: {}", e.message)
            } else {
                "The pipeline was not created: fix the fields marked below, then go on to Review again.".into()
            };
            w.pipe_error.set(Some(e));
            Err((step, message))
        }
    }
}
