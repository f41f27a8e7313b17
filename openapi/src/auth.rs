//! Sign-up, log-in and session tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{ApiTokenId, FieldError, Role, TenantId, UserId};

/// Creates a tenant and its first owner.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub tenant_name: String,
    pub email: String,
    /// At least 12 characters.
    pub password: String,
}

impl Validate for SignupRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.name("tenant_name", &self.tenant_name);
        v.email("email", &self.email);
        v.password("password", &self.password);
        v.finish()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Which tenant to enter when the user belongs to several; the oldest
    /// membership otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<TenantId>,
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.check(!self.email.is_empty(), "email", "must not be empty");
        v.check(!self.password.is_empty(), "password", "must not be empty");
        v.check(self.email.len() <= 254, "email", "must be at most 254 characters");
        v.check(self.password.len() <= 1024, "password", "is too long");
        v.finish()
    }
}

/// Exchanges a refresh token for a new pair (the old one is spent), or ends
/// the session it belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.token("refresh_token", &self.refresh_token);
        v.finish()
    }
}

/// The answer to a request whose next step arrives by e-mail (a verified
/// sign-up, a password reset). It is the same whether or not the address
/// has an account, so it tells nobody which addresses do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckYourEmail {
    pub message: String,
}

/// Finishes a verified sign-up with the token from its e-mail.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSignupRequest {
    pub token: String,
}

impl Validate for ConfirmSignupRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.token("token", &self.token);
        v.finish()
    }
}

/// Changes the caller's own password; every session of the account ends
/// (the answer is a new one for the caller).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

impl Validate for ChangePasswordRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.check(!self.current_password.is_empty(), "current_password", "must not be empty");
        v.check(self.current_password.len() <= 1024, "current_password", "is too long");
        v.password("new_password", &self.new_password);
        v.finish()
    }
}

/// Asks for a password-reset link for an address.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

impl Validate for PasswordResetRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.email("email", &self.email);
        v.finish()
    }
}

/// Sets a new password with the token from a reset e-mail; every session of
/// the account ends.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPasswordResetRequest {
    pub token: String,
    /// At least 12 characters.
    pub new_password: String,
}

impl Validate for ConfirmPasswordResetRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.token("token", &self.token);
        v.password("new_password", &self.new_password);
        v.finish()
    }
}

/// A new session: a short-lived access token and a single-use refresh token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one; presenting a spent one ends the session.
    pub refresh_token: String,
    pub tenant: Tenant,
    pub user: User,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    User { id: UserId, email: String },
    ApiToken { id: ApiTokenId, name: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub principal: Principal,
    pub tenant: Tenant,
    pub role: Role,
}
