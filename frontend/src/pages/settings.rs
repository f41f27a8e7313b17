//! Settings: members and their roles, invitations, API tokens, and the
//! user's own password.

use icehouse_api::auth::ChangePasswordRequest;
use icehouse_api::invitations::{CreateInvitationRequest, CreatedInvitation, Invitation};
use icehouse_api::pagination::Page;
use icehouse_api::users::{ApiToken, CreateApiTokenRequest, CreatedApiToken, Member, UpdateMemberRequest};
use icehouse_api::{Role, Validate};
use leptos::ev::{FocusEvent, SubmitEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiError};
use crate::components::{FieldErrors, FormError, LoadError, Loading, Session};
use crate::logic::{format_time, invitation_mail_note};

const ROLES: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner];

#[component]
pub fn Settings() -> impl IntoView {
    let session = Session::get();
    view! {
        <section>
            <h1>"Settings"</h1>
            <Members />
            <Show
                when=move || session.is_admin()
                fallback=|| view! { <p class="hint">"API tokens are managed by admins."</p> }
            >
                <Tokens />
            </Show>
            // API tokens have no password to change.
            <Show when=move || session.user_email().is_some()>
                <ChangePassword />
            </Show>
        </section>
    }
}

/// A revoke button's two clicks: the first asks to confirm, the second
/// deletes `path` and reloads the list; a failure shows in `row_error`.
/// Returns (confirming, deleting, the click handler).
fn confirmed_delete(
    path: String,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    row_error: RwSignal<Option<ApiError>>,
) -> (RwSignal<bool>, RwSignal<bool>, impl Fn(leptos::ev::MouseEvent) + 'static) {
    let confirm = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let click = move |_| {
        if !confirm.get() {
            confirm.set(true);
            return;
        }
        busy.set(true);
        row_error.set(None);
        let path = path.clone();
        spawn_local(async move {
            match api::delete(&path).await {
                Ok(()) => reload(),
                Err(e) => {
                    row_error.set(Some(e));
                    confirm.set(false);
                }
            }
            busy.set(false);
        });
    };
    (confirm, busy, click)
}

/// Selects a read-only secret's text when it gets the focus, for copying.
fn select_on_focus(ev: FocusEvent) {
    use wasm_bindgen::JsCast;
    if let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
        input.select();
    }
}

/// A `<select>` of roles.
#[component]
fn RoleSelect(
    #[prop(into)] id: String,
    value: RwSignal<String>,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    view! {
        <select id=id class=class on:change=move |ev| value.set(event_target_value(&ev)) prop:value=move || value.get()>
            {ROLES
                .iter()
                .map(|r| view! { <option value=r.as_str() selected=move || value.get() == r.as_str()>{r.as_str()}</option> })
                .collect_view()}
        </select>
    }
}

#[component]
fn Members() -> impl IntoView {
    let session = Session::get();
    let members = RwSignal::new(None::<Result<Vec<Member>, ApiError>>);
    let reload = move || {
        spawn_local(async move {
            members.set(Some(api::get::<Page<Member>>("/users?limit=200").await.map(|p| p.items)));
        })
    };
    reload();

    let row_error = RwSignal::new(None::<ApiError>);

    view! {
        <h2>"Members"</h2>
        <FormError error=row_error id="member-error" />
        {move || match members.get() {
            None => view! { <Loading what="members" /> }.into_any(),
            Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
            Some(Ok(list)) => {
                view! {
                    <table id="members-table">
                        <thead>
                            <tr>
                                <th scope="col">"Email"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Member since"</th>
                                <th scope="col">
                                    <span class="sr-only">"Actions"</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {list
                                .into_iter()
                                .map(|m| view! { <MemberRow m reload row_error /> })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }
        }}
        <Show when=move || session.is_admin()>
            <Invitations members />
        </Show>
    }
}

#[component]
fn MemberRow(
    m: Member,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    row_error: RwSignal<Option<ApiError>>,
) -> impl IntoView {
    let session = Session::get();
    let role = RwSignal::new(m.role.as_str().to_string());
    let saving = RwSignal::new(false);
    let confirm = RwSignal::new(false);
    let id = m.user_id;
    // Change the role as soon as another one is picked.
    Effect::new(move |prev: Option<String>| {
        let now = role.get();
        if let Some(prev) = prev {
            if prev != now {
                saving.set(true);
                row_error.set(None);
                let req = UpdateMemberRequest { role: Role::parse(&now).unwrap_or(Role::Viewer) };
                spawn_local(async move {
                    if let Err(e) = api::patch::<_, Member>(&format!("/users/{id}"), &req).await {
                        row_error.set(Some(e));
                        reload();
                    }
                    saving.set(false);
                });
            }
        }
        now
    });
    let remove = move |_| {
        if !confirm.get() {
            confirm.set(true);
            return;
        }
        saving.set(true);
        row_error.set(None);
        spawn_local(async move {
            match api::delete(&format!("/users/{id}")).await {
                Ok(()) => reload(),
                Err(e) => {
                    row_error.set(Some(e));
                    confirm.set(false);
                }
            }
            saving.set(false);
        });
    };
    let email = m.email.clone();
    view! {
        <tr id=format!("member-{id}") data-email=m.email.clone()>
            <td class="member-email">{m.email.clone()}</td>
            <td>
                {move || {
                    if session.is_admin() {
                        view! {
                            <label class="sr-only" for=format!("member-role-{id}")>{format!("Role of {email}")}</label>
                            <RoleSelect id=format!("member-role-{id}") value=role class="member-role" />
                        }
                            .into_any()
                    } else {
                        view! { <span class="member-role-text">{role.get()}</span> }.into_any()
                    }
                }}
            </td>
            <td>{format_time(&m.created_at)}</td>
            <td>
                <Show when=move || session.is_admin()>
                    <button
                        type="button"
                        class="danger small member-remove"
                        id=format!("member-remove-{id}")
                        disabled=move || saving.get()
                        on:click=remove
                    >
                        {move || {
                            if saving.get() {
                                "Saving…"
                            } else if confirm.get() {
                                "Really remove?"
                            } else {
                                "Remove"
                            }
                        }}
                    </button>
                </Show>
            </td>
        </tr>
    }
}

/// Inviting members (admins and owners): the form, the link of the
/// invitation just made (shown once), and the pending invitations.
#[component]
fn Invitations(members: RwSignal<Option<Result<Vec<Member>, ApiError>>>) -> impl IntoView {
    let invitations = RwSignal::new(None::<Result<Vec<Invitation>, ApiError>>);
    let reload = move || {
        spawn_local(async move {
            invitations.set(Some(api::get::<Page<Invitation>>("/invitations?limit=200").await.map(|p| p.items)));
        })
    };
    reload();

    let email = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_string());
    let error = RwSignal::new(None::<ApiError>);
    let inviting = RwSignal::new(false);
    let created = RwSignal::new(None::<CreatedInvitation>);
    let row_error = RwSignal::new(None::<ApiError>);

    let invite = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = CreateInvitationRequest {
            email: email.get().trim().to_string(),
            role: Role::parse(&role.get()).unwrap_or(Role::Viewer),
        };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        inviting.set(true);
        error.set(None);
        created.set(None);
        spawn_local(async move {
            match api::post::<_, CreatedInvitation>("/invitations", &req).await {
                Ok(c) => {
                    created.set(Some(c));
                    email.set(String::new());
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
            inviting.set(false);
        });
    };
    // Who invited, by e-mail, while they are still a member.
    let inviter = move |inv: &Invitation| {
        members.with(|m| {
            m.as_ref()
                .and_then(|r| r.as_ref().ok())
                .and_then(|list| list.iter().find(|m| m.user_id == inv.invited_by))
                .map(|m| m.email.clone())
        })
    };

    view! {
        <form class="inline-form" id="invite-form" on:submit=invite novalidate>
            <h3>"Invite a member"</h3>
            <p class="hint">
                "The invitation's link lets the address join with this role: a new address creates its account, an existing one proves it is theirs."
            </p>
            <div class="fields">
                <div>
                    <label for="invite-email">"Email"</label>
                    <input id="invite-email" type="email" autocomplete="off" bind:value=email />
                    <FieldErrors error field="email" />
                </div>
                <div>
                    <label for="invite-role">"Role"</label>
                    <RoleSelect id="invite-role" value=role />
                    <FieldErrors error field="role" />
                </div>
            </div>
            <FormError error shown=&["email", "role"] id="invite-error" />
            <button id="invite-submit" type="submit" disabled=move || inviting.get()>
                {move || if inviting.get() { "Inviting…" } else { "Invite" }}
            </button>
        </form>
        {move || {
            created
                .get()
                .map(|c| {
                    view! {
                        <div class="secret" id="invite-result" role="status">
                            <p>{invitation_mail_note(c.mail, &c.invitation.email)}</p>
                            <label for="invite-link">"Invitation link"</label>
                            <input id="invite-link" type="text" readonly prop:value=c.url.clone() on:focus=select_on_focus />
                            <p class="hint">
                                {format!(
                                    "The link is shown only this once. It works once, until {}.",
                                    format_time(&c.invitation.expires_at),
                                )}
                            </p>
                            <button type="button" class="secondary small" id="invite-done" on:click=move |_| created.set(None)>
                                "Done"
                            </button>
                        </div>
                    }
                })
        }}
        <h3>"Pending invitations"</h3>
        <FormError error=row_error id="invitation-row-error" />
        {move || match invitations.get() {
            None => view! { <Loading what="invitations" /> }.into_any(),
            Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
            Some(Ok(list)) if list.is_empty() => view! { <p id="invitations-empty">"No pending invitations."</p> }.into_any(),
            Some(Ok(list)) => {
                view! {
                    <table id="invitations-table">
                        <thead>
                            <tr>
                                <th scope="col">"Email"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Invited by"</th>
                                <th scope="col">"Invited"</th>
                                <th scope="col">"Expires"</th>
                                <th scope="col">
                                    <span class="sr-only">"Actions"</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {list
                                .into_iter()
                                .map(|inv| {
                                    let invited_by = Signal::derive({
                                        let inv = inv.clone();
                                        move || inviter(&inv)
                                    });
                                    view! { <InvitationRow inv invited_by reload row_error /> }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }
        }}
    }
}

#[component]
fn InvitationRow(
    inv: Invitation,
    invited_by: Signal<Option<String>>,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    row_error: RwSignal<Option<ApiError>>,
) -> impl IntoView {
    let id = inv.id;
    let (confirm, revoking, revoke) = confirmed_delete(format!("/invitations/{id}"), reload, row_error);
    view! {
        <tr id=format!("invitation-row-{id}") data-email=inv.email.clone()>
            <td class="invitation-email">{inv.email.clone()}</td>
            <td>{inv.role.as_str()}</td>
            <td>{move || invited_by.get().unwrap_or_else(|| "a former member".into())}</td>
            <td>{format_time(&inv.created_at)}</td>
            <td>{format_time(&inv.expires_at)}</td>
            <td>
                <button
                    type="button"
                    class="danger small invitation-revoke"
                    id=format!("invitation-revoke-{id}")
                    disabled=move || revoking.get()
                    on:click=revoke
                >
                    {move || {
                        if revoking.get() {
                            "Revoking…"
                        } else if confirm.get() {
                            "Really revoke?"
                        } else {
                            "Revoke"
                        }
                    }}
                </button>
            </td>
        </tr>
    }
}

/// The logged-in user's own password. Changing it ends every other session
/// of the account; the answer is a new session for this one.
#[component]
fn ChangePassword() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let saving = RwSignal::new(false);
    let changed = RwSignal::new(false);

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let req = ChangePasswordRequest { current_password: current.get(), new_password: new.get() };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        saving.set(true);
        error.set(None);
        changed.set(false);
        spawn_local(async move {
            match api::replace_session("/me/password", &req).await {
                Ok(_) => {
                    current.set(String::new());
                    new.set(String::new());
                    changed.set(true);
                }
                Err(e) => error.set(Some(e)),
            }
            saving.set(false);
        });
    };

    view! {
        <h2>"Your account"</h2>
        <form class="inline-form" id="password-form" on:submit=submit novalidate>
            <h3>"Change your password"</h3>
            <div class="fields">
                <div>
                    <label for="password-current">"Current password"</label>
                    <input id="password-current" type="password" autocomplete="current-password" bind:value=current />
                    <FieldErrors error field="current_password" />
                </div>
                <div>
                    <label for="password-new">"New password"</label>
                    <input
                        id="password-new"
                        type="password"
                        autocomplete="new-password"
                        minlength="12"
                        aria-describedby="password-new-hint"
                        bind:value=new
                    />
                    <p class="hint" id="password-new-hint">"At least 12 characters. Your other sessions end."</p>
                    <FieldErrors error field="new_password" />
                </div>
            </div>
            <FormError error shown=&["current_password", "new_password"] id="password-error" />
            <button id="password-submit" type="submit" disabled=move || saving.get()>
                {move || if saving.get() { "Changing…" } else { "Change password" }}
            </button>
            <Show when=move || changed.get()>
                <p id="password-changed" class="ok" role="status">
                    "Your password is changed. Every other session of your account has ended."
                </p>
            </Show>
        </form>
    }
}

#[component]
fn Tokens() -> impl IntoView {
    let tokens = RwSignal::new(None::<Result<Vec<ApiToken>, ApiError>>);
    let reload = move || {
        spawn_local(async move {
            tokens.set(Some(api::get::<Page<ApiToken>>("/api-tokens?limit=200").await.map(|p| p.items)));
        })
    };
    reload();

    let name = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_string());
    let days = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let creating = RwSignal::new(false);
    let created = RwSignal::new(None::<CreatedApiToken>);
    let row_error = RwSignal::new(None::<ApiError>);

    let create = move |ev: SubmitEvent| {
        ev.prevent_default();
        let days_text = days.get();
        let expires_in_days = if days_text.trim().is_empty() {
            None
        } else {
            match days_text.trim().parse::<u32>() {
                Ok(d) => Some(d),
                Err(_) => {
                    error.set(Some(ApiError::field("expires_in_days", "must be a whole number of days")));
                    return;
                }
            }
        };
        let req = CreateApiTokenRequest {
            name: name.get().trim().to_string(),
            role: Role::parse(&role.get()).unwrap_or(Role::Viewer),
            expires_in_days,
        };
        if let Err(fields) = req.validate() {
            error.set(Some(ApiError::from_fields(fields)));
            return;
        }
        creating.set(true);
        error.set(None);
        created.set(None);
        spawn_local(async move {
            match api::post::<_, CreatedApiToken>("/api-tokens", &req).await {
                Ok(t) => {
                    created.set(Some(t));
                    name.set(String::new());
                    days.set(String::new());
                    reload();
                }
                Err(e) => error.set(Some(e)),
            }
            creating.set(false);
        });
    };

    view! {
        <h2>"API tokens"</h2>
        <p class="hint">"For scripts and integrations: " <code>"Authorization: Bearer <secret>"</code> "."</p>
        <form class="inline-form" id="token-form" on:submit=create novalidate>
            <div class="fields">
                <div>
                    <label for="token-name">"Name"</label>
                    <input id="token-name" type="text" autocomplete="off" bind:value=name />
                    <FieldErrors error field="name" />
                </div>
                <div>
                    <label for="token-role">"Role"</label>
                    <RoleSelect id="token-role" value=role />
                    <FieldErrors error field="role" />
                </div>
                <div>
                    <label for="token-expires">"Expires after (days)"</label>
                    <input
                        id="token-expires"
                        type="number"
                        min="1"
                        max="3650"
                        aria-describedby="token-expires-hint"
                        bind:value=days
                    />
                    <p class="hint" id="token-expires-hint">"Empty: the server default, 90 days unless configured otherwise."</p>
                    <FieldErrors error field="expires_in_days" />
                </div>
            </div>
            <FormError error shown=&["name", "role", "expires_in_days"] id="token-error" />
            <button id="token-create" type="submit" disabled=move || creating.get()>
                {move || if creating.get() { "Creating…" } else { "Create token" }}
            </button>
        </form>
        {move || {
            created
                .get()
                .map(|t| {
                    view! {
                        <div class="secret" role="status">
                            <p>
                                "Token " <strong>{t.token.name.clone()}</strong>
                                " created. Copy its secret now: it is not shown again."
                            </p>
                            <label for="token-secret">"Secret"</label>
                            <input id="token-secret" type="text" readonly prop:value=t.secret.clone() on:focus=select_on_focus />
                            <button type="button" class="secondary small" id="token-secret-done" on:click=move |_| created.set(None)>
                                "Done"
                            </button>
                        </div>
                    }
                })
        }}
        <FormError error=row_error id="token-row-error" />
        {move || match tokens.get() {
            None => view! { <Loading what="tokens" /> }.into_any(),
            Some(Err(e)) => view! { <LoadError error=e /> }.into_any(),
            Some(Ok(list)) if list.is_empty() => view! { <p id="tokens-empty">"No API tokens."</p> }.into_any(),
            Some(Ok(list)) => {
                view! {
                    <table id="tokens-table">
                        <thead>
                            <tr>
                                <th scope="col">"Name"</th>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Created"</th>
                                <th scope="col">"Expires"</th>
                                <th scope="col">"Last used"</th>
                                <th scope="col">
                                    <span class="sr-only">"Actions"</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|t| view! { <TokenRow t reload row_error /> }).collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }
        }}
    }
}

#[component]
fn TokenRow(
    t: ApiToken,
    reload: impl Fn() + Copy + Send + Sync + 'static,
    row_error: RwSignal<Option<ApiError>>,
) -> impl IntoView {
    let id = t.id;
    let (confirm, revoking, revoke) = confirmed_delete(format!("/api-tokens/{id}"), reload, row_error);
    view! {
        <tr id=format!("token-row-{id}") data-name=t.name.clone()>
            <td class="token-name">{t.name.clone()}</td>
            <td>{t.role.as_str()}</td>
            <td>{format_time(&t.created_at)}</td>
            <td>{t.expires_at.map(|x| format_time(&x)).unwrap_or_else(|| "never".into())}</td>
            <td>{t.last_used_at.map(|x| format_time(&x)).unwrap_or_else(|| "never".into())}</td>
            <td>
                <button
                    type="button"
                    class="danger small token-revoke"
                    id=format!("token-revoke-{id}")
                    disabled=move || revoking.get()
                    on:click=revoke
                >
                    {move || {
                        if revoking.get() {
                            "Revoking…"
                        } else if confirm.get() {
                            "Really revoke?"
                        } else {
                            "Revoke"
                        }
                    }}
                </button>
            </td>
        </tr>
    }
}
