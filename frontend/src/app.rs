//! The application shell: session context, header, routes, polling.

use std::time::Duration;

use icehouse_api::auth::{Me, Principal};
use icehouse_api::notifications::NotificationList;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::hooks::use_navigate;
use leptos_router::path;

use crate::api;
use crate::components::{Loading, Session};
use crate::pages::{auth, notifications, pipelines, settings, tables, wizard};

#[component]
pub fn App() -> impl IntoView {
    let session =
        Session { me: RwSignal::new(None), active: RwSignal::new(api::has_session()), unread: RwSignal::new(0) };
    provide_context(session);
    api::on_session_end(move || {
        session.active.set(false);
        session.me.set(None);
    });
    // Who is logged in, whenever a session starts.
    Effect::new(move |_| {
        if session.active.get() {
            spawn_local(async move {
                if let Ok(me) = api::get::<Me>("/me").await {
                    session.me.set(Some(me));
                }
            });
        }
    });

    view! {
        <Router>
            <Header />
            <main id="main">
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("/") view=Home />
                    <Route path=path!("/login") view=auth::Login />
                    <Route path=path!("/signup") view=auth::Signup />
                    <Route path=path!("/signup/confirm") view=auth::SignupConfirm />
                    <Route path=path!("/password-reset") view=auth::PasswordReset />
                    <Route path=path!("/invitations/accept") view=auth::AcceptInvitation />
                    <Route path=path!("/pipelines") view=|| guarded(pipelines::PipelineList) />
                    <Route path=path!("/pipelines/new") view=|| guarded(wizard::Wizard) />
                    <Route path=path!("/pipelines/:id") view=|| guarded(pipelines::PipelinePage) />
                    <Route path=path!("/tables") view=|| guarded(tables::TableList) />
                    <Route path=path!("/tables/:namespace/:table") view=|| guarded(tables::TablePage) />
                    <Route path=path!("/notifications") view=|| guarded(notifications::Notifications) />
                    <Route path=path!("/settings") view=|| guarded(settings::Settings) />
                </Routes>
            </main>
        </Router>
    }
}

/// A page for logged-in users: log-in when there is no session, a loading
/// line until `/me` answered, then the page.
fn guarded<V: IntoView + 'static>(page: fn() -> V) -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if !session.active.get() {
            navigate("/login", Default::default());
        }
    });
    // A memo: the page is built once, not again whenever `me` is re-set.
    let ready = Memo::new(move |_| session.me.with(Option::is_some));
    move || {
        if ready.get() {
            page().into_any()
        } else {
            view! { <Loading /> }.into_any()
        }
    }
}

#[component]
fn Home() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    Effect::new(move |_| {
        let to = if session.active.get() { "/pipelines" } else { "/login" };
        navigate(to, leptos_router::NavigateOptions { replace: true, ..Default::default() });
    });
    view! { <Loading /> }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section>
            <h1>"Not found"</h1>
            <p>"There is no page here. " <A href="/pipelines">"Go to the pipelines"</A> "."</p>
        </section>
    }
}

#[component]
fn Header() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    let leaving = RwSignal::new(false);
    let logout = move |_| {
        leaving.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            api::logout().await;
            leaving.set(false);
            navigate("/login", Default::default());
        });
    };
    let who = move || {
        session.me.with(|me| {
            me.as_ref().map(|me| {
                let name = match &me.principal {
                    Principal::User { email, .. } => email.clone(),
                    Principal::ApiToken { name, .. } => format!("token {name}"),
                };
                format!("{name} · {} · {}", me.tenant.name, me.role.as_str())
            })
        })
    };
    view! {
        <header class="top">
            <a class="skip" href="#main">"Skip to content"</a>
            <a class="brand" href="/">"Icehouse"</a>
            <Show when=move || session.me.with(Option::is_some)>
                <nav aria-label="Main">
                    <A href="/pipelines" exact=true attr:id="nav-pipelines">"Pipelines"</A>
                    <Show when=move || session.can_edit()>
                        <A href="/pipelines/new" attr:id="nav-new-pipeline">"New pipeline"</A>
                    </Show>
                    <A href="/tables" attr:id="nav-tables">"Tables"</A>
                    <Show when=move || session.is_admin()>
                        <A href="/notifications" attr:id="nav-notifications">
                            "Notifications"
                            <NotificationBadge />
                        </A>
                    </Show>
                    <A href="/settings" attr:id="nav-settings">"Settings"</A>
                </nav>
                <span class="who" id="whoami">{who}</span>
                <button id="logout" type="button" class="secondary" on:click=logout.clone() disabled=move || leaving.get()>
                    {move || if leaving.get() { "Logging out…" } else { "Log out" }}
                </button>
            </Show>
        </header>
    }
}

/// The unread count, polled; only mounted for admins and owners.
#[component]
fn NotificationBadge() -> impl IntoView {
    let session = Session::get();
    poll(15_000, move || {
        spawn_local(async move {
            if let Ok(list) = api::get::<NotificationList>("/notifications?limit=1").await {
                session.unread.set(list.unread);
            }
        })
    });
    view! {
        <span
            id="notif-count"
            class="badge"
            class:zero=move || session.unread.get() == 0
            aria-label=move || format!("{} unread", session.unread.get())
        >
            {move || session.unread.get()}
        </span>
    }
}

/// Runs `tick` now and every `every_ms` until the calling component goes away.
pub fn poll(every_ms: u64, tick: impl Fn() + 'static) {
    tick();
    let handle = set_interval_with_handle(tick, Duration::from_millis(every_ms)).ok();
    on_cleanup(move || {
        if let Some(handle) = handle {
            handle.clear();
        }
    });
}
