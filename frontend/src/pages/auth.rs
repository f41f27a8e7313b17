//! Sign-up (creates the tenant) and log-in.

use icehouse_api::auth::{LoginRequest, SignupRequest};
use icehouse_api::Validate;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{self, ApiError};
use crate::components::{FieldErrors, FormError, Session};

#[component]
pub fn Signup() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    let tenant = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = SignupRequest { tenant_name: tenant.get(), email: email.get(), password: password.get() };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        error.set(None);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::start_session("/auth/signup", &req).await;
            pending.set(false);
            match result {
                Ok(_) => {
                    session.active.set(true);
                    navigate("/pipelines", Default::default());
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="narrow">
            <h1>"Create your Icehouse"</h1>
            <p class="hint">"A new workspace (tenant) with you as its owner."</p>
            <form on:submit=submit novalidate>
                <label for="signup-tenant">"Organisation name"</label>
                <input id="signup-tenant" type="text" autocomplete="organization" required bind:value=tenant />
                <FieldErrors error field="tenant_name" />

                <label for="signup-email">"Email"</label>
                <input id="signup-email" type="email" autocomplete="email" required bind:value=email />
                <FieldErrors error field="email" />

                <label for="signup-password">"Password"</label>
                <input
                    id="signup-password"
                    type="password"
                    autocomplete="new-password"
                    minlength="12"
                    required
                    aria-describedby="signup-password-hint"
                    bind:value=password
                />
                <p class="hint" id="signup-password-hint">"At least 12 characters."</p>
                <FieldErrors error field="password" />

                <FormError error shown=&["tenant_name", "email", "password"] id="signup-error" />
                <button id="signup-submit" type="submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Creating…" } else { "Sign up" }}
                </button>
            </form>
            <p>"Already have an account? " <A href="/login" attr:id="goto-login">"Log in"</A></p>
        </section>
    }
}

#[component]
pub fn Login() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = LoginRequest { email: email.get(), password: password.get(), tenant_id: None };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        error.set(None);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::start_session("/auth/login", &req).await;
            pending.set(false);
            match result {
                Ok(_) => {
                    session.active.set(true);
                    navigate("/pipelines", Default::default());
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="narrow">
            <h1>"Log in"</h1>
            <form on:submit=submit novalidate>
                <label for="login-email">"Email"</label>
                <input id="login-email" type="email" autocomplete="username" required bind:value=email />
                <FieldErrors error field="email" />

                <label for="login-password">"Password"</label>
                <input id="login-password" type="password" autocomplete="current-password" required bind:value=password />
                <FieldErrors error field="password" />

                <FormError error shown=&["email", "password"] id="login-error" />
                <button id="login-submit" type="submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Logging in…" } else { "Log in" }}
                </button>
            </form>
            <p>"New here? " <A href="/signup" attr:id="goto-signup">"Create an account"</A></p>
        </section>
    }
}
