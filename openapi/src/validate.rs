//! Validation of request bodies, shared by the server (authoritative) and the
//! web UI (to show errors by their field before a round trip).

use crate::FieldError;

/// A request that can check itself; every error names the field it concerns.
pub trait Validate {
    fn validate(&self) -> Result<(), Vec<FieldError>>;
}

/// Collects field errors.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_EMAIL_LEN: usize = 254;
pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 256;
pub const MAX_SECRET_LEN: usize = 1024;

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.error(field, message);
        }
    }

    /// A display name: 1 to 100 characters, no control characters, not blank.
    pub fn name(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(field, "must not be empty");
        } else if value.chars().count() > MAX_NAME_LEN {
            self.error(field, format!("must be at most {MAX_NAME_LEN} characters"));
        } else if value.chars().any(char::is_control) {
            self.error(field, "must not contain control characters");
        } else if value.trim() != value {
            self.error(field, "must not start or end with white space");
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        if value.len() > MAX_EMAIL_LEN {
            self.error(field, format!("must be at most {MAX_EMAIL_LEN} characters"));
            return;
        }
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        self.check(valid, field, "must be an email address like name@example.com");
    }

    pub fn password(&mut self, field: &str, value: &str) {
        let chars = value.chars().count();
        if chars < MIN_PASSWORD_LEN {
            self.error(field, format!("must be at least {MIN_PASSWORD_LEN} characters"));
        } else if chars > MAX_PASSWORD_LEN {
            self.error(field, format!("must be at most {MAX_PASSWORD_LEN} characters"));
        }
    }

    /// A single-use secret we handed out (a link's token).
    pub fn token(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.error(field, "must not be empty");
        } else if value.len() > 512 {
            self.error(field, "is too long");
        }
    }

    /// A secret we store (Kafka or S3 credentials): non-empty and bounded.
    pub fn secret(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.error(field, "must not be empty");
        } else if value.len() > MAX_SECRET_LEN {
            self.error(field, format!("must be at most {MAX_SECRET_LEN} bytes"));
        }
    }

    /// Plain text bounded in length, e.g. a user name or a region.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.error(field, "must not be empty");
        } else if value.chars().count() > max {
            self.error(field, format!("must be at most {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.error(field, "must not contain control characters");
        }
    }

    /// An identifier safe in every SQL engine without quoting:
    /// lower-case letters, digits and `_`, starting with a letter or `_`.
    pub fn identifier(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.error(field, "must not be empty");
        } else if value.len() > 128 {
            self.error(field, "must be at most 128 characters");
        } else if !is_identifier(value) {
            self.error(field, "must use only lower-case letters, digits and _, and start with a letter or _");
        }
    }

    /// How many errors were found so far.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

pub fn is_identifier(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            let mut v = Validator::new();
            v.email("email", ok);
            assert!(v.finish().is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b.co.", "a@b@c.de"] {
            let mut v = Validator::new();
            v.email("email", bad);
            assert_eq!(v.finish().unwrap_err()[0].field, "email", "{bad}");
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("store_sales_2"));
        assert!(is_identifier("_x"));
        assert!(!is_identifier("2x"));
        assert!(!is_identifier("Store"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }
}
