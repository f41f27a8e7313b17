//! Iceberg warehouse destinations: local disk (`file://`) or an S3-compatible
//! object store (`s3://`). The secret key is write-only.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{DestinationId, FieldError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Destination {
    pub id: DestinationId,
    pub name: String,
    /// `file:///absolute/path` or `s3://bucket/prefix`.
    pub warehouse_uri: String,
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    #[serde(default)]
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_access_key_id: Option<String>,
    /// Whether an S3 secret access key is stored (it is never returned).
    pub s3_secret_access_key_set: bool,
    /// The namespace new pipelines write to unless they name another.
    pub default_namespace: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestinationRequest {
    pub name: String,
    pub warehouse_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<String>,
    /// Write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key: Option<String>,
    #[serde(default = "default_namespace")]
    pub default_namespace: String,
}

pub fn default_namespace() -> String {
    "default".to_string()
}

/// Changes the given fields; absent fields keep their value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestinationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_namespace: Option<String>,
}

/// An update is checked once merged with what is stored, as [`DestinationSettings`].
impl Validate for UpdateDestinationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

/// The complete settings of a destination, as validated after create or update.
#[derive(Clone, Debug)]
pub struct DestinationSettings<'a> {
    pub name: &'a str,
    pub warehouse_uri: &'a str,
    pub s3_endpoint: Option<&'a str>,
    pub s3_region: Option<&'a str>,
    pub s3_access_key_id: Option<&'a str>,
    pub new_s3_secret_access_key: Option<&'a str>,
    pub s3_secret_access_key_set: bool,
    pub default_namespace: &'a str,
}

impl DestinationSettings<'_> {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.name("name", self.name);
        v.identifier("default_namespace", self.default_namespace);
        match WarehouseUri::parse(self.warehouse_uri) {
            Err(message) => v.error("warehouse_uri", message),
            Ok(WarehouseUri::File { .. }) => {
                let msg = "is only allowed with an s3:// warehouse";
                v.check(self.s3_endpoint.is_none(), "s3_endpoint", msg);
                v.check(self.s3_region.is_none(), "s3_region", msg);
                v.check(self.s3_access_key_id.is_none(), "s3_access_key_id", msg);
                v.check(self.new_s3_secret_access_key.is_none(), "s3_secret_access_key", msg);
            }
            Ok(WarehouseUri::S3 { .. }) => {
                if let Some(endpoint) = self.s3_endpoint {
                    let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                        && endpoint.len() <= 255
                        && !endpoint.contains(char::is_whitespace)
                        && endpoint.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
                    v.check(ok, "s3_endpoint", "must be an http:// or https:// URL");
                }
                if let Some(region) = self.s3_region {
                    // With no endpoint the region names the AWS host: nothing but a region name.
                    let ok = !region.is_empty()
                        && region.len() <= 64
                        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    v.check(ok, "s3_region", "must be a region name (lowercase letters, digits and dashes)");
                }
                // Keys come as a pair, or neither (credentials from the environment).
                let has_key_id = self.s3_access_key_id.is_some();
                if let Some(key_id) = self.s3_access_key_id {
                    v.text("s3_access_key_id", key_id, 128);
                }
                if let Some(secret) = self.new_s3_secret_access_key {
                    v.secret("s3_secret_access_key", secret);
                }
                if has_key_id != self.s3_secret_access_key_set {
                    let field = if has_key_id { "s3_secret_access_key" } else { "s3_access_key_id" };
                    v.error(field, "access key id and secret access key go together");
                }
            }
        }
        v.finish()
    }
}

impl Validate for CreateDestinationRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        DestinationSettings {
            name: &self.name,
            warehouse_uri: &self.warehouse_uri,
            s3_endpoint: self.s3_endpoint.as_deref(),
            s3_region: self.s3_region.as_deref(),
            s3_access_key_id: self.s3_access_key_id.as_deref(),
            new_s3_secret_access_key: self.s3_secret_access_key.as_deref(),
            s3_secret_access_key_set: self.s3_secret_access_key.is_some(),
            default_namespace: &self.default_namespace,
        }
        .validate()
    }
}

/// A parsed warehouse location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarehouseUri<'a> {
    /// An absolute, normalised local path.
    File {
        path: &'a str,
    },
    S3 {
        bucket: &'a str,
        prefix: &'a str,
    },
}

impl<'a> WarehouseUri<'a> {
    pub fn parse(uri: &'a str) -> Result<Self, String> {
        if uri.len() > 1024 {
            return Err("must be at most 1024 characters".into());
        }
        if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain white space or control characters".into());
        }
        if let Some(path) = uri.strip_prefix("file://") {
            let path = path.strip_suffix('/').unwrap_or(path);
            let normal = path.len() > 1
                && path.starts_with('/')
                && path[1..].split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !normal {
                return Err(
                    "a file:// warehouse needs an absolute, normalised path below /, like file:///var/lib/icehouse/warehouse"
                        .into(),
                );
            }
            return Ok(WarehouseUri::File { path });
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !bucket_ok {
                return Err(
                    "an s3:// warehouse needs a valid bucket name (3-63 lower-case letters, digits, - and .)".into()
                );
            }
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err("the s3:// prefix must not contain . or .. segments".into());
            }
            return Ok(WarehouseUri::S3 { bucket, prefix: prefix.trim_end_matches('/') });
        }
        Err("must start with file:// or s3://".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warehouse_uris() {
        assert_eq!(WarehouseUri::parse("file:///var/lib/wh"), Ok(WarehouseUri::File { path: "/var/lib/wh" }));
        assert_eq!(WarehouseUri::parse("file:///var/lib/wh/"), Ok(WarehouseUri::File { path: "/var/lib/wh" }));
        assert_eq!(
            WarehouseUri::parse("s3://my-bucket/lake/prod"),
            Ok(WarehouseUri::S3 { bucket: "my-bucket", prefix: "lake/prod" })
        );
        for bad in [
            "",
            "/var/lib",
            "file://relative",
            "file:///",
            "file:///a/../b",
            "file:///a//b",
            "file:///a/./b",
            "s3://",
            "s3://A",
            "s3://ab",
            "s3://bucket/../x",
            "http://x/y",
            "file:///a b",
        ] {
            assert!(WarehouseUri::parse(bad).is_err(), "{bad}");
        }
    }
}
