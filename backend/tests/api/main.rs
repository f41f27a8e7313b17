//! HTTP tests of the control-plane API: a real server on port 0 over a fresh
//! Postgres database per test.

mod audit_and_pages;
mod auth;
mod bad_input;
mod helpers;
mod invitations;
mod kafka;
mod openapi;
mod pipeline_tables;
mod query_limits;
mod retention;
mod roles;
mod secrets;
mod tenancy;
mod warehouse;
