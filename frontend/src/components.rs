//! Small views used by every page: field errors, form errors, sparklines.

use icehouse_api::Role;
use leptos::prelude::*;

use crate::api::ApiError;
use crate::logic::{sparkline_points, unshown};

/// Who is logged in, shared through the context.
#[derive(Clone, Copy)]
pub struct Session {
    pub me: RwSignal<Option<icehouse_api::auth::Me>>,
    /// Whether tokens are stored; false sends every page to log-in.
    pub active: RwSignal<bool>,
    /// Unread notifications, for the header badge (admins and owners).
    pub unread: RwSignal<i64>,
}

impl Session {
    pub fn get() -> Session {
        expect_context::<Session>()
    }

    /// A session was just stored (log-in, sign-up, an accepted invitation):
    /// forget who was logged in, since it may be another user or tenant, and
    /// let the app ask `/me` again. `set` notifies even when `active` was
    /// already true, so the app's `/me` effect runs for a session that
    /// replaced another one too.
    pub fn started(&self) {
        self.me.set(None);
        self.active.set(true);
    }

    /// The logged-in user's e-mail; `None` for an API token (or before `/me`).
    pub fn user_email(&self) -> Option<String> {
        self.me.with(|me| match me.as_ref().map(|m| &m.principal) {
            Some(icehouse_api::auth::Principal::User { email, .. }) => Some(email.clone()),
            _ => None,
        })
    }

    pub fn role(&self) -> Option<Role> {
        self.me.with(|me| me.as_ref().map(|m| m.role))
    }

    /// Editors and above create and change things; viewers see no such buttons.
    pub fn can_edit(&self) -> bool {
        self.role().is_some_and(|r| r >= Role::Editor)
    }

    pub fn is_admin(&self) -> bool {
        self.role().is_some_and(|r| r >= Role::Admin)
    }
}

/// The errors of `error` that concern `field` (and its elements, like
/// `field[1]`, unless `exact`), each as
/// `<p class="field-error" data-field="<api field>">`, to sit next to its input.
#[component]
pub fn FieldErrors(
    error: RwSignal<Option<ApiError>>,
    #[prop(into)] field: String,
    #[prop(optional)] exact: bool,
) -> impl IntoView {
    move || {
        error.with(|e| {
            e.as_ref()
                .map(|e| e.fields_matching(&field))
                .unwrap_or_default()
                .into_iter()
                .filter(|fe| !exact || fe.field == field)
                .map(|fe| {
                    view! { <p class="field-error" data-field=fe.field role="alert">{fe.message}</p> }
                })
                .collect_view()
        })
    }
}

/// The part of `error` no input shows: its message when it names no fields,
/// or the field errors for fields not in `shown` (with their names).
#[component]
pub fn FormError(
    error: RwSignal<Option<ApiError>>,
    #[prop(optional)] shown: &'static [&'static str],
    #[prop(optional, into)] id: Option<String>,
) -> impl IntoView {
    move || {
        let id = id.clone();
        error.with(|e| {
            let e = e.as_ref()?;
            if e.fields.is_empty() {
                return Some(view! { <p class="form-error" role="alert" id=id>{e.message.clone()}</p> }.into_any());
            }
            let rest = unshown(&e.fields, shown);
            if rest.is_empty() {
                return None;
            }
            Some(
                view! {
                    <div class="form-error" role="alert" id=id>
                        {rest
                            .into_iter()
                            .map(|fe| {
                                view! {
                                    <p class="field-error" data-field=fe.field.clone()>
                                        <code>{fe.field.clone()}</code>
                                        " "
                                        {fe.message.clone()}
                                    </p>
                                }
                            })
                            .collect_view()}
                    </div>
                }
                .into_any(),
            )
        })
    }
}

/// A labelled error for a failed load (not a form).
#[component]
pub fn LoadError(error: ApiError) -> impl IntoView {
    view! { <p class="form-error" role="alert">{error.message}</p> }
}

/// An inline SVG sparkline of `values`.
#[component]
pub fn Sparkline(
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    values: Signal<Vec<i64>>,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    const W: f64 = 240.0;
    const H: f64 = 40.0;
    view! {
        <svg
            id=id
            class=format!("sparkline {class}")
            viewBox=format!("0 -2 {W} {}", H + 4.0)
            width=W
            height=H + 4.0
            role="img"
            aria-label=label
        >
            <line x1="0" y1=H x2=W y2=H class="baseline"></line>
            <polyline points=move || values.with(|v| sparkline_points(v, W, H))></polyline>
        </svg>
    }
}

/// "loading…" in a paragraph, for lists and pages that are still loading.
#[component]
pub fn Loading(#[prop(optional, into)] what: Option<String>) -> impl IntoView {
    let text = match what {
        Some(what) => format!("Loading {what}…"),
        None => "Loading…".to_string(),
    };
    view! { <p class="loading" aria-live="polite">{text}</p> }
}
