//! The Icehouse web UI: Leptos, client-side rendered, compiled to
//! wasm32-unknown-unknown by `scripts/build-frontend.sh` and served by the
//! backend at `/` (`backend/src/ui.rs`). It talks only to `/api/v1`, with the
//! wire types of `icehouse-api`.
//!
//! On native targets only [`logic`] is compiled (and unit-tested): the
//! browser stack is a wasm32-only dependency.
//!
//! # Stable selectors (for browser tests; keep them stable)
//!
//! Field errors everywhere: `<p class="field-error" data-field="<api field>">`,
//! where `<api field>` is the field named by the API's problem+json `errors`
//! (`bootstrap_servers[0]`, `table_name`, `mapping.columns[2].type`, `sql`…).
//! Errors that no input shows: `.form-error` (with the ids below). Buttons
//! show their loading state as `disabled` plus a text ending in `…`.
//!
//! - Header: `#nav-pipelines`, `#nav-new-pipeline` (editors+), `#nav-tables`,
//!   `#nav-notifications` (admins+) with `#notif-count` (unread; class `zero`
//!   when 0), `#nav-settings`, `#whoami`, `#logout`.
//! - Sign up (`/signup`): `#signup-tenant`, `#signup-email`, `#signup-password`,
//!   `#signup-submit`, `#signup-error`, `#goto-login`; `#signup-check-email`
//!   (the server's message, instead of the form) when sign-up is verified by
//!   e-mail. Its link (`/signup/confirm#token=…`) starts the session at once
//!   and goes to `/pipelines`, or shows `#confirm-error`.
//! - Log in (`/login`): `#login-email`, `#login-password`, `#login-submit`,
//!   `#login-error`, `#goto-signup`, `#goto-password-reset`.
//! - Password reset (`/password-reset`): `#reset-email`, `#reset-submit`,
//!   `#reset-error`, then `#reset-sent` (the server's message). Opened from
//!   the e-mailed link (`#token=…`): `#reset-new-password`, `#reset-confirm`,
//!   `#reset-error`, then `#reset-done` with `#goto-login`.
//! - Accept an invitation (`/invitations/accept#token=…`): `#accept-as-me`
//!   (only with a session: "Join as <email>"), `#accept-form` with
//!   `#accept-password`, `#accept-submit`, `#accept-error` (also alone, for a
//!   link without a token). Success goes to `/pipelines` in the invited tenant.
//! - Wizard (`/pipelines/new`): steps `#wizard-step-1`…`#wizard-step-4` (the
//!   current one has class `current`), `#wizard-step-title`, `#wizard-error`
//!   (banner after a failed create), `#wizard-back`, `#wizard-next`;
//!   `#wizard-forbidden` instead of the wizard for viewers.
//!   1. Connect: `#conn-existing` (select, only when saved connections exist;
//!      value `new` or a connection id), `#conn-bootstrap`, `#conn-name`,
//!      `#conn-protocol`, `#conn-mechanism`, `#conn-username`, `#conn-password`
//!      (the three only for SASL protocols), `#conn-test`, `#conn-test-result`
//!      (success: brokers and topic count), `#conn-test-error` (failure, a
//!      `.field-error[data-field=bootstrap_servers]`), `#conn-error`,
//!      `#topic-search`, `#topic-list`, `#topic-<name>` (buttons,
//!      `aria-pressed`), `#topic-none`, `#selected-topic`.
//!   2. Destination: `#dest-select` (value an id or `new`), `#dest-name`,
//!      `#dest-uri`, `#dest-error`, `#namespace`, `#table-name`,
//!      `#pipeline-name`, `#start-earliest`, `#start-latest`.
//!   3. Mapping: `#nested-struct` (checkbox; re-samples), `#mapping-resample`,
//!      `#mapping-check`, `#sample-error`, `#mapping-table`, rows
//!      `#mapping-row-<i>` (0-based) with inputs `.col-name`, `.col-type`,
//!      `.col-path`, `.col-nullable`, `.col-format` (temporal types only),
//!      `.col-example`, `.col-remove` (ids `#mapping-<i>-name|type|path|
//!      nullable|format|remove`), `.col-misfits` (`#mapping-<i>-misfits`,
//!      while the type is the suggested one and some samples do not fit
//!      it), `#mapping-add`, `#partition-transform`
//!      (`""`, `hour`, `day`, `month`, `year`), `#partition-column`,
//!      `#mapping-misfits`, `#sample-messages` with `#sample-message-<i>`
//!      (`.message`, class `misfit` plus `.message-problem` when it does not
//!      fit), `#sample-empty`.
//!   4. Review: `#review`, `#review-connection`, `#review-topic`,
//!      `#review-destination`, `#review-table`, `#review-name`,
//!      `#review-start`, `#review-partitioning`, `#review-columns`,
//!      `#review-misfits`, `#create-error`, `#create-pipeline`.
//! - Pipelines (`/pipelines`): `#new-pipeline`, `#pipelines-table`, rows
//!   `#pipeline-row-<id>` (`data-name`) with `.pipeline-state` (also class
//!   `state-<state>`), `.pipeline-lag`, `.pipeline-rows`; `#pipelines-empty`,
//!   `#create-first-pipeline`.
//! - Pipeline (`/pipelines/<id>`): `#pipeline-name`, `#pipeline-pause` /
//!   `#pipeline-resume` (editors+), `#pipeline-action-error`,
//!   `#pipeline-topic`, `#pipeline-table` (link), `#pipeline-desired`,
//!   `#pipeline-state` (`starting|running|paused|failing`), `#pipeline-rows`,
//!   `#pipeline-dead-letter-count`, `#pipeline-lag`, `#pipeline-last-commit`,
//!   `#pipeline-last-error`, `#pipeline-watermarks-error`,
//!   `#throughput-sparkline`, `#dead-letter-sparkline` (`<svg>` with one
//!   `<polyline>`), `#rows-last-hour`, `#dead-letters-last-hour`,
//!   `#partition-lag` with rows `#partition-<n>` (`.partition-lag`),
//!   `#dead-letter-rows` with `.dead-letter` rows (`.dead-letter-reason`,
//!   `pre.raw`), `#dead-letter-total`, `#dead-letters-empty`.
//! - Tables (`/tables`): `#tables-table`, rows `#table-row-<ns>-<table>`,
//!   `#tables-empty`. Table (`/tables/<ns>/<table>`): `#table-title`,
//!   `#table-row-count`, `#table-metadata-location`, `#table-schema`
//!   (`.schema-name` cells), `#table-partition-spec`, `#table-snapshots`,
//!   `#sql-input`, `#sql-run`, `#sql-error`, `#sql-result` (holds `#sql-meta`
//!   and `#sql-result-table`; `td.null` for NULL).
//! - Notifications (`/notifications`, admins+): `#notif-mark-read`,
//!   `#notif-list` with `#notif-<id>` (`.notification`, class `unread`,
//!   `.notif-message`), `#notif-empty`, `#notif-error`.
//! - Settings (`/settings`): `#members-table` with rows `#member-<user id>`
//!   (`data-email`; `.member-role` select `#member-role-<user id>` and
//!   `.member-remove` button `#member-remove-<user id>` for admins+; removing
//!   asks "Really remove?" on the first click), `#member-error`; inviting
//!   (admins+): `#invite-form` with `#invite-email`, `#invite-role`,
//!   `#invite-submit`, `#invite-error`, then `#invite-result` (the link,
//!   shown once, in the input `#invite-link`; `#invite-done`),
//!   `#invitations-table` with rows `#invitation-row-<id>` (`data-email`;
//!   `.invitation-revoke` button `#invitation-revoke-<id>`, two clicks),
//!   `#invitations-empty`, `#invitation-row-error`; tokens (admins+):
//!   `#token-name`, `#token-role`, `#token-expires`, `#token-create`,
//!   `#token-error`, `#token-secret` (input, shown once),
//!   `#token-secret-done`, `#tokens-table` with rows
//!   `#token-row-<id>` (`data-name`; `.token-revoke` button
//!   `#token-revoke-<id>`, two clicks), `#tokens-empty`, `#token-row-error`;
//!   the user's password (user sessions, not API tokens): `#password-form`
//!   with `#password-current`, `#password-new`, `#password-submit`,
//!   `#password-error`, then `#password-changed`.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod pages;

/// The entry point, run by the `init()` of the generated JavaScript.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    if let Some(boot) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot")) {
        boot.remove();
    }
    leptos::mount::mount_to_body(app::App);
}
