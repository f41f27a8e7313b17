//! Invitations: how a member joins a tenant. An admin invites an address
//! with a role; the invitation's single-use link reaches that address by
//! e-mail (when the server has mail) and is shown once to the admin. Whoever
//! opens it either creates the account (a new address) or proves they hold
//! it (a log-in, or its password), so no tenant ever sets or learns the
//! password of an account.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{FieldError, InvitationId, Role, UserId};

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    pub email: String,
    pub role: Role,
}

impl Validate for CreateInvitationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.email("email", &self.email);
        v.finish()
    }
}

/// An invitation not yet accepted (or expired).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub invited_by: UserId,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// What became of the invitation e-mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailDelivery {
    /// Handed to the SMTP server.
    Sent,
    /// The server has no mail settings: pass the link on yourself.
    NotConfigured,
    /// The SMTP server could not be reached or refused it: pass the link on yourself.
    Failed,
    /// Too many mails to this address lately: pass the link on yourself.
    Throttled,
}

/// A new invitation, with its secret: shown this once, never again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// The single-use secret; `POST /api/v1/invitations/accept` takes it.
    pub token: String,
    /// The link to send: the web UI's accept page, with the token.
    pub url: String,
    pub mail: MailDelivery,
}

/// Accepts an invitation. With a user's bearer token, the logged-in account
/// (which must have the invited address) joins. Without one: a new address
/// gets an account with `password`; an existing account must give its own
/// password.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Validate for AcceptInvitationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.token("token", &self.token);
        if let Some(password) = &self.password {
            v.check(!password.is_empty(), "password", "must not be empty");
            v.check(password.len() <= 1024, "password", "is too long");
        }
        v.finish()
    }
}
