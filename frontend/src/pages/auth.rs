//! The pages that start a session or recover one: sign-up (creates the
//! tenant) and its e-mailed confirmation, log-in, password reset, and
//! accepting an invitation. The e-mailed links carry their single-use token
//! in the URL fragment (`#token=…`).

use icehouse_api::auth::{
    CheckYourEmail, ConfirmPasswordResetRequest, ConfirmSignupRequest, LoginRequest, PasswordResetRequest,
    SignupRequest,
};
use icehouse_api::invitations::AcceptInvitationRequest;
use icehouse_api::Validate;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::api::{self, ApiError, SignupAnswer};
use crate::components::{FieldErrors, FormError, Session};
use crate::logic::fragment_param;

#[component]
pub fn Signup() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    let tenant = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    // Verified sign-up: the server's "check your e-mail" message.
    let check_email = RwSignal::new(None::<String>);

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
            let result = api::signup(&req).await;
            pending.set(false);
            match result {
                Ok(SignupAnswer::Started) => {
                    session.started();
                    navigate("/pipelines", Default::default());
                }
                Ok(SignupAnswer::CheckYourEmail(answer)) => check_email.set(Some(answer.message)),
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="narrow">
            <h1>"Create your Icehouse"</h1>
            <p class="hint">"A new workspace (tenant) with you as its owner."</p>
            <Show
                when=move || check_email.with(Option::is_none)
                fallback=move || {
                    view! {
                        <p id="signup-check-email" class="banner" role="status">
                            {move || check_email.get().unwrap_or_default()}
                        </p>
                    }
                }
            >
                <form on:submit=submit.clone() novalidate>
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
            </Show>
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
                    session.started();
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
            <p>
                <A href="/password-reset" attr:id="goto-password-reset">"Forgot your password?"</A>
            </p>
            <p>"New here? " <A href="/signup" attr:id="goto-signup">"Create an account"</A></p>
        </section>
    }
}

/// The `#token=…` of the e-mailed link this page was opened with.
fn link_token() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    let token = fragment_param(&location.hash().ok()?, "token")?;
    // Out of the address bar and the history entry, so the single-use
    // secret does not linger where the next person at the browser finds it.
    if let (Ok(history), Ok(path)) = (window.history(), location.pathname()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
    Some(token)
}

/// An error to show before anything was sent.
fn page_error(message: &str) -> ApiError {
    ApiError { status: 0, message: message.into(), fields: vec![] }
}

/// `e`, with `message` when the server did not know the link: unknown, used
/// and expired tokens all answer 404, and the reader needs the next step.
fn link_error(mut e: ApiError, message: &str) -> ApiError {
    if e.status == 404 {
        e.message = message.into();
    }
    e
}

/// `/signup/confirm#token=…`, the link of a verified sign-up: starts the
/// session as soon as it opens.
#[component]
pub fn SignupConfirm() -> impl IntoView {
    let session = Session::get();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<ApiError>);
    match link_token().map(|token| ConfirmSignupRequest { token }) {
        None => error.set(Some(page_error(
            "This link has no sign-up token. Open the link from your e-mail again, or sign up again.",
        ))),
        Some(req) => match req.validate() {
            Err(fields) => error.set(Some(ApiError::from_fields(fields))),
            Ok(()) => spawn_local(async move {
                match api::start_session("/auth/signup/confirm", &req).await {
                    Ok(_) => {
                        session.started();
                        navigate("/pipelines", leptos_router::NavigateOptions { replace: true, ..Default::default() });
                    }
                    Err(e) => error.set(Some(link_error(
                        e,
                        "This sign-up link is unknown, already used or expired. Sign up again.",
                    ))),
                }
            }),
        },
    }

    view! {
        <section class="narrow">
            <h1>"Confirm your sign-up"</h1>
            <Show
                when=move || error.with(Option::is_some)
                fallback=|| view! { <p class="loading" aria-live="polite">"Confirming your sign-up…"</p> }
            >
                <FormError error id="confirm-error" />
                <p>
                    <A href="/signup">"Sign up"</A>
                    " or "
                    <A href="/login">"log in"</A>
                    "."
                </p>
            </Show>
        </section>
    }
}

/// `/password-reset`: asks for a link by e-mail; opened from that link
/// (`#token=…`), sets the new password.
#[component]
pub fn PasswordReset() -> impl IntoView {
    match link_token() {
        Some(token) => view! { <NewPassword token /> }.into_any(),
        None => view! { <RequestReset /> }.into_any(),
    }
}

#[component]
fn RequestReset() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    let sent = RwSignal::new(None::<String>);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = PasswordResetRequest { email: email.get().trim().to_string() };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let result = api::post_public::<_, CheckYourEmail>("/auth/password-reset", &req).await;
            pending.set(false);
            match result {
                Ok(answer) => sent.set(Some(answer.message)),
                Err(e) => error.set(Some(e)),
            }
        });
    };

    view! {
        <section class="narrow">
            <h1>"Reset your password"</h1>
            <Show
                when=move || sent.with(Option::is_none)
                fallback=move || {
                    view! {
                        <p id="reset-sent" class="banner" role="status">
                            {move || sent.get().unwrap_or_default()}
                        </p>
                    }
                }
            >
                <form on:submit=submit novalidate>
                    <label for="reset-email">"Email"</label>
                    <input
                        id="reset-email"
                        type="email"
                        autocomplete="username"
                        required
                        aria-describedby="reset-email-hint"
                        bind:value=email
                    />
                    <p class="hint" id="reset-email-hint">"If it has an account, a link to set a new password goes to this address."</p>
                    <FieldErrors error field="email" />

                    <FormError error shown=&["email"] id="reset-error" />
                    <button id="reset-submit" type="submit" disabled=move || pending.get()>
                        {move || if pending.get() { "Sending…" } else { "Send the link" }}
                    </button>
                </form>
            </Show>
            <p><A href="/login">"Back to log in"</A></p>
        </section>
    }
}

#[component]
fn NewPassword(token: String) -> impl IntoView {
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    let done = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = ConfirmPasswordResetRequest { token: token.clone(), new_password: password.get() };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let result = api::post_public::<_, ()>("/auth/password-reset/confirm", &req).await;
            pending.set(false);
            match result {
                Ok(()) => done.set(true),
                Err(e) => error.set(Some(link_error(
                    e,
                    "This reset link is unknown, already used or expired. Ask for a new one.",
                ))),
            }
        });
    };

    view! {
        <section class="narrow">
            <h1>"Choose a new password"</h1>
            <Show
                when=move || !done.get()
                fallback=|| {
                    view! {
                        <div id="reset-done" role="status">
                            <p>"Your password is changed, and every session of your account has ended."</p>
                            <p>
                                <A href="/login" attr:id="goto-login">"Log in"</A>
                                " with the new password."
                            </p>
                        </div>
                    }
                }
            >
                <form on:submit=submit.clone() novalidate>
                    <label for="reset-new-password">"New password"</label>
                    <input
                        id="reset-new-password"
                        type="password"
                        autocomplete="new-password"
                        minlength="12"
                        required
                        aria-describedby="reset-new-password-hint"
                        bind:value=password
                    />
                    <p class="hint" id="reset-new-password-hint">"At least 12 characters."</p>
                    <FieldErrors error field="new_password" />

                    <FormError error shown=&["new_password"] id="reset-error" />
                    <button id="reset-confirm" type="submit" disabled=move || pending.get()>
                        {move || if pending.get() { "Saving…" } else { "Set the new password" }}
                    </button>
                </form>
            </Show>
        </section>
    }
}

/// `/invitations/accept#token=…`: joins the invited tenant, either as the
/// logged-in user or with a password (a new account's, or the existing
/// account's own), and enters it.
#[component]
pub fn AcceptInvitation() -> impl IntoView {
    const PATH: &str = "/invitations/accept";
    let session = Session::get();
    let navigate = use_navigate();
    let token = link_token();
    let missing = token.is_none();
    let token = token.unwrap_or_default();
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    // Which button is pending: "Join as …" (true) or the password form.
    let as_me = RwSignal::new(false);
    if missing {
        error.set(Some(page_error(
            "This link has no invitation token. Open the link from your invitation e-mail again, \
             or ask an admin of the workspace for a new invitation.",
        )));
    }

    let send = move |req: AcceptInvitationRequest| {
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        let with_session = req.password.is_none();
        error.set(None);
        as_me.set(with_session);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            // With a password the call carries no bearer: the password is the
            // proof, and its 401 means a wrong password, not an ended session.
            let result = if with_session {
                api::replace_session(PATH, &req).await
            } else {
                api::start_session(PATH, &req).await
            };
            pending.set(false);
            match result {
                Ok(_) => {
                    session.started();
                    navigate("/pipelines", Default::default());
                }
                Err(e) => error.set(Some(link_error(
                    e,
                    "This invitation is unknown, already used or expired. Ask an admin of the workspace for a new one.",
                ))),
            }
        });
    };
    let submit = {
        let send = send.clone();
        let token = token.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            send(AcceptInvitationRequest { token: token.clone(), password: Some(password.get()) });
        }
    };
    let join_as_me = move |_| send(AcceptInvitationRequest { token: token.clone(), password: None });

    view! {
        <section class="narrow">
            <h1>"Accept your invitation"</h1>
            {missing.then(|| view! { <FormError error id="accept-error" /> })}
            {(!missing).then(move || view! {
                <Show when=move || session.active.get() && session.user_email().is_some()>
                    <p>
                        <button
                            id="accept-as-me"
                            type="button"
                            disabled=move || pending.get()
                            on:click=join_as_me.clone()
                        >
                            {move || {
                                if pending.get() && as_me.get() {
                                    "Joining…".to_string()
                                } else {
                                    format!("Join as {}", session.user_email().unwrap_or_default())
                                }
                            }}
                        </button>
                    </p>
                    <p class="hint">"The account you are logged in with must have the invited address. Or:"</p>
                </Show>
                <form id="accept-form" on:submit=submit novalidate>
                    <label for="accept-password">"Password"</label>
                    <input
                        id="accept-password"
                        type="password"
                        autocomplete="new-password"
                        required
                        aria-describedby="accept-password-hint"
                        bind:value=password
                    />
                    <p class="hint" id="accept-password-hint">
                        "A new account gets this password; an existing one needs its own."
                    </p>
                    <FieldErrors error field="password" />

                    <FormError error shown=&["password"] id="accept-error" />
                    <button id="accept-submit" type="submit" disabled=move || pending.get()>
                        {move || if pending.get() && !as_me.get() { "Joining…" } else { "Join" }}
                    </button>
                </form>
            })}
        </section>
    }
}
