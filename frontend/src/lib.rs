//! The Icehouse web UI.
//!
//! Not built yet: the Leptos app (sign-up, the wizard, pipelines, tables) is
//! the web UI issue's work. Until then the server serves no UI at `/`, and
//! everything is reachable through the REST API under `/api/v1`.
