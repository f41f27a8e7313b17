//! Authentication and authorization.
//!
//! Access tokens are short-lived HS256 JWTs naming a user and a tenant; the
//! role is read from the membership on every request, so a demotion or
//! removal takes effect at once. Refresh tokens and API tokens are random
//! secrets stored as SHA-256 hashes (they have full entropy, so a slow hash
//! adds nothing); passwords are argon2id.

pub mod context;
pub mod limits;
pub mod password;
pub mod tokens;

pub use context::{authenticate, Actor, RequestContext};
