//! Sampling a topic and suggesting a mapping from what it holds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::pipelines::ColumnMapping;

/// The most messages one sample reads.
pub const MAX_SAMPLE: u32 = 100;

/// The most bytes of a sampled message's key or value shown as text; the
/// rest is cut (the check against the columns still sees the whole message).
pub const MAX_SAMPLE_TEXT_BYTES: usize = 64 * 1024;

/// What to do with nested JSON objects in a suggestion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NestedMode {
    /// `{"a": {"b": 1}}` becomes a column `a_b`.
    #[default]
    Flatten,
    /// `{"a": {"b": 1}}` becomes a column `a` of type `struct<b:long>`.
    Struct,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    /// How many messages to read, 1 to 100 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub nested: NestedMode,
    /// Check the messages against these columns instead of the suggestion
    /// (the wizard sends the mapping as edited).
    #[serde(default)]
    pub columns: Option<Vec<ColumnMapping>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampleResponse {
    /// The newest messages of the topic, up to `limit`, spread over partitions.
    pub messages: Vec<SampledMessage>,
    /// The mapping Icehouse suggests from the messages that are JSON objects.
    pub suggestion: Vec<SuggestedColumn>,
    /// How many sampled messages do not fit the checked columns.
    pub misfits: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampledMessage {
    pub partition: i32,
    pub offset: i64,
    #[serde(default)]
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// The key as text (invalid UTF-8 replaced), when there is one.
    #[serde(default)]
    pub key: Option<String>,
    /// The value as text (invalid UTF-8 replaced); absent for a tombstone.
    #[serde(default)]
    pub value: Option<String>,
    /// Whether the key or the value was cut to 64 KiB for showing.
    #[serde(default)]
    pub truncated: bool,
    /// The value's whole length in bytes.
    #[serde(default)]
    pub value_bytes: usize,
    /// Why this message would go to the dead-letter table with the checked
    /// columns; absent when it fits.
    #[serde(default)]
    pub problem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SuggestedColumn {
    #[serde(flatten)]
    pub column: ColumnMapping,
    /// A value seen at the path, as JSON text, for showing beside the column.
    #[serde(default)]
    pub example: Option<String>,
    /// How many sampled messages have a value at the path that does not fit
    /// the suggested type: with this column they go to the dead-letter table.
    /// Not 0 only where nearly all samples (95 % or more, nulls not counted)
    /// agree on a type and the rest do not; without such a majority the
    /// column is `string`, which every value fits.
    #[serde(default)]
    pub misfits: u32,
    /// The first value that does not fit, as JSON text, cut to 80 characters.
    #[serde(default)]
    pub misfit_example: Option<String>,
}

impl crate::Validate for SampleRequest {
    fn validate(&self) -> Result<(), Vec<crate::FieldError>> {
        let mut v = crate::validate::Validator::new();
        if let Some(limit) = self.limit {
            v.check((1..=MAX_SAMPLE).contains(&limit), "limit", format!("must be between 1 and {MAX_SAMPLE}"));
        }
        if let Some(columns) = &self.columns {
            let mapping = crate::pipelines::Mapping { columns: columns.clone() };
            crate::pipelines::validate_mapping(&mut v, &mapping);
        }
        v.finish()
    }
}
