//! Notifications for admins and owners: pipeline failures and recoveries,
//! newest first, with "mark all read".

use icehouse_api::notifications::{MarkReadRequest, NotificationKind, NotificationList};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;

use crate::api::{self, ApiError};
use crate::app::poll;
use crate::components::{FormError, LoadError, Loading, Session};
use crate::logic::{ago, format_time};

fn kind_text(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::PipelineFailing => "failing",
        NotificationKind::PipelineError => "error",
        NotificationKind::PipelineRecovered => "recovered",
    }
}

#[component]
pub fn Notifications() -> impl IntoView {
    let session = Session::get();
    let list = RwSignal::new(None::<Result<NotificationList, ApiError>>);
    let error = RwSignal::new(None::<ApiError>);
    let marking = RwSignal::new(false);
    let busy = StoredValue::new(false);
    let reload = move || {
        if busy.get_value() {
            return;
        }
        busy.set_value(true);
        spawn_local(async move {
            let result = api::get::<NotificationList>("/notifications?limit=50").await;
            if let Ok(l) = &result {
                session.unread.set(l.unread);
            }
            list.set(Some(result));
            busy.set_value(false);
        });
    };
    poll(10_000, reload);

    let mark_read = move |_| {
        let newest = list
            .with_untracked(|l| l.as_ref().and_then(|l| l.as_ref().ok()).and_then(|l| l.items.first().map(|n| n.id)));
        marking.set(true);
        error.set(None);
        spawn_local(async move {
            match api::post::<_, ()>("/notifications/read", &MarkReadRequest { up_to: newest }).await {
                Ok(()) => {
                    marking.set(false);
                    reload();
                }
                Err(e) => {
                    marking.set(false);
                    error.set(Some(e));
                }
            }
        });
    };

    view! {
        <section>
            <div class="title-row">
                <h1>"Notifications"</h1>
                <button
                    id="notif-mark-read"
                    type="button"
                    class="secondary"
                    on:click=mark_read
                    disabled=move || marking.get() || session.unread.get() == 0
                >
                    {move || if marking.get() { "Marking…" } else { "Mark all read" }}
                </button>
            </div>
            <FormError error id="notif-error" />
            {move || match list.get() {
                None => view! { <Loading what="notifications" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
                Some(Ok(l)) if l.items.is_empty() => {
                    view! { <p id="notif-empty">"Nothing to report: no pipeline has failed."</p> }.into_any()
                }
                Some(Ok(l)) => {
                    let now = js_sys::Date::now() as i64;
                    view! {
                        <ul id="notif-list" class="notifications">
                            {l
                                .items
                                .into_iter()
                                .map(|n| {
                                    let kind = kind_text(n.kind);
                                    view! {
                                        <li id=format!("notif-{}", n.id) class=format!("notification kind-{kind}") class:unread=!n.read>
                                            <span class=format!("tag kind-{kind}")>{kind}</span>
                                            " "
                                            {n
                                                .pipeline_id
                                                .map(|id| {
                                                    view! {
                                                        <A href=format!("/pipelines/{id}")>
                                                            {n.pipeline_name.clone().unwrap_or_else(|| "pipeline".into())}
                                                        </A>
                                                        ": "
                                                    }
                                                })}
                                            <span class="notif-message">{n.message.clone()}</span>
                                            " "
                                            <time title=format_time(&n.created_at)>{ago(&n.created_at, now)}</time>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                }
            }}
        </section>
    }
}
