//! One module per screen.

pub mod auth;
pub mod notifications;
pub mod pipelines;
pub mod settings;
pub mod tables;
pub mod wizard;
