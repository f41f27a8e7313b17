//! Typed forms of the text columns the protocol reads and writes. The
//! migrations' CHECK constraints list the same values; a value outside them
//! (a newer schema, a hand edit) decodes to an error that names the column
//! value, never to a default.

use icehouse_api::pipelines::{DesiredState, MessageFormat, StartPosition};
use icehouse_api::status::PipelineState;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// A value of a text column that this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}` in the database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// The state of a slice (`pipeline_slices.state`) and of a pipeline summed
/// up over its slices (`pipeline_leases.state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SliceState {
    /// Waiting for a worker, or connecting.
    #[default]
    Starting,
    Running,
    Paused,
    /// Failed and retrying; the pipeline's `last_error` says why.
    Failing,
}

impl SliceState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Failing => "failing",
        }
    }

    pub fn parse(value: &str) -> Result<Self, UnknownValue> {
        Ok(match value {
            "starting" => Self::Starting,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "failing" => Self::Failing,
            _ => return Err(UnknownValue { what: "slice state", value: value.into() }),
        })
    }
}

impl From<SliceState> for PipelineState {
    fn from(state: SliceState) -> Self {
        match state {
            SliceState::Starting => PipelineState::Starting,
            SliceState::Running => PipelineState::Running,
            SliceState::Paused => PipelineState::Paused,
            SliceState::Failing => PipelineState::Failing,
        }
    }
}

impl Type<Postgres> for SliceState {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for SliceState {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for SliceState {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::parse(<&str as Decode<Postgres>>::decode(value)?)?)
    }
}

/// `pipelines.start_position`.
pub fn start_position(value: &str) -> Result<StartPosition, UnknownValue> {
    match value {
        "earliest" => Ok(StartPosition::Earliest),
        "latest" => Ok(StartPosition::Latest),
        _ => Err(UnknownValue { what: "start position", value: value.into() }),
    }
}

/// `pipelines.desired_state`.
pub fn desired_state(value: &str) -> Result<DesiredState, UnknownValue> {
    match value {
        "running" => Ok(DesiredState::Running),
        "paused" => Ok(DesiredState::Paused),
        _ => Err(UnknownValue { what: "desired state", value: value.into() }),
    }
}

/// `pipelines.format`.
pub fn message_format(value: &str) -> Result<MessageFormat, UnknownValue> {
    match value {
        "json" => Ok(MessageFormat::Json),
        _ => Err(UnknownValue { what: "message format", value: value.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_states_round_trip_through_their_text() {
        for s in [SliceState::Starting, SliceState::Running, SliceState::Paused, SliceState::Failing] {
            assert_eq!(SliceState::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(
            SliceState::parse("stopped").unwrap_err().to_string(),
            "unknown slice state `stopped` in the database"
        );
    }

    #[test]
    fn an_unknown_start_position_is_an_error_not_earliest() {
        assert_eq!(start_position("latest").unwrap(), StartPosition::Latest);
        assert_eq!(start_position("earliest").unwrap(), StartPosition::Earliest);
        assert!(start_position("newest").is_err());
        assert!(desired_state("stopped").is_err());
        assert!(message_format("avro").is_err());
    }
}
