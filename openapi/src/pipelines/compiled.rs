//! A mapping checked and parsed once.
//!
//! A mapping arrives as text: type strings such as `decimal(10,2)` and paths
//! such as `$.customer.id`. [`CompiledMapping::compile`] reads that text in
//! one place, and the table schema, the decoder of every format and the
//! partition checks all take the compiled form, so they cannot disagree on
//! what a column means. The server compiles a mapping when it validates a
//! request; a worker compiles the stored one when it loads a pipeline.

use super::{IcebergType, JsonPath, Mapping, PartitionField, PartitionTransform, TimestampFormat, MAX_COLUMNS};
use crate::validate::Validator;
use crate::FieldError;

/// A valid mapping: at least one column, unique names, every type and path parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledMapping {
    columns: Vec<CompiledColumn>,
}

/// One column of a [`CompiledMapping`].
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledColumn {
    pub name: String,
    pub ty: IcebergType,
    pub path: JsonPath,
    /// The path as the mapping writes it, for error messages.
    pub path_text: String,
    pub nullable: bool,
    /// Only ever set on date, timestamp and timestamptz columns; ISO-8601 when `None`.
    pub timestamp_format: Option<TimestampFormat>,
}

/// Why a mapping does not compile: every problem, each naming its field.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingErrors(pub Vec<FieldError>);

impl std::fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for MappingErrors {}

/// At most this many fields in a partition spec.
pub const MAX_PARTITION_FIELDS: usize = 4;

impl CompiledMapping {
    /// The compiled mapping, or every problem with it, each naming its field
    /// as the API reports it (`mapping.columns[2].type`).
    pub fn compile(mapping: &Mapping) -> Result<CompiledMapping, MappingErrors> {
        let mut v = Validator::new();
        let compiled = compile_into(&mut v, mapping);
        v.finish().map_err(MappingErrors)?;
        Ok(compiled.expect("a mapping without errors compiles"))
    }

    pub fn columns(&self) -> &[CompiledColumn] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<&CompiledColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Checks a partition spec against the columns: at most
    /// [`MAX_PARTITION_FIELDS`] fields, each naming a column whose type its
    /// transform accepts. Errors name `partition_by[i].column`.
    pub fn check_partitioning(&self, v: &mut Validator, fields: &[PartitionField]) {
        check_partition_count(v, fields);
        for (i, pf) in fields.iter().take(MAX_PARTITION_FIELDS).enumerate() {
            let field = format!("partition_by[{i}].column");
            match self.column(&pf.column) {
                None => v.error(field, format!("`{}` is not a column of the mapping", pf.column)),
                Some(col) => v.check(
                    pf.transform.accepts(&col.ty),
                    &field,
                    format!("cannot be partitioned by {:?} (type {})", pf.transform, col.ty).to_lowercase(),
                ),
            }
        }
    }
}

pub(super) fn check_partition_count(v: &mut Validator, fields: &[PartitionField]) {
    if fields.len() > MAX_PARTITION_FIELDS {
        v.error("partition_by", format!("must have at most {MAX_PARTITION_FIELDS} fields"));
    }
}

impl PartitionTransform {
    /// Whether a column of type `ty` can be partitioned by this transform.
    pub fn accepts(self, ty: &IcebergType) -> bool {
        match self {
            PartitionTransform::Identity => ty.is_primitive(),
            PartitionTransform::Year | PartitionTransform::Month | PartitionTransform::Day => ty.is_temporal(),
            PartitionTransform::Hour => matches!(ty, IcebergType::Timestamp | IcebergType::Timestamptz),
        }
    }
}

/// Adds the mapping's problems to `v`; the compiled mapping when it has none.
pub(super) fn compile_into(v: &mut Validator, mapping: &Mapping) -> Option<CompiledMapping> {
    let before = v.error_count();
    if mapping.columns.is_empty() {
        v.error("mapping.columns", "must have at least one column");
    } else if mapping.columns.len() > MAX_COLUMNS {
        v.error("mapping.columns", format!("must have at most {MAX_COLUMNS} columns"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(mapping.columns.len().min(MAX_COLUMNS));
    for (i, col) in mapping.columns.iter().take(MAX_COLUMNS).enumerate() {
        let field = |f: &str| format!("mapping.columns[{i}].{f}");
        v.identifier(&field("name"), &col.name);
        if !seen.insert(col.name.as_str()) {
            v.error(field("name"), format!("duplicate column name `{}`", col.name));
        }
        let ty = match IcebergType::parse(&col.column_type) {
            Err(message) => {
                v.error(field("type"), message);
                None
            }
            Ok(ty) if col.timestamp_format.is_some() && !ty.is_temporal() => {
                v.error(field("timestamp_format"), "is only allowed on date, timestamp and timestamptz columns");
                None
            }
            Ok(ty) => Some(ty),
        };
        let path = JsonPath::parse(&col.path).map_err(|message| v.error(field("path"), message)).ok();
        if let (Some(ty), Some(path)) = (ty, path) {
            columns.push(CompiledColumn {
                name: col.name.clone(),
                ty,
                path,
                path_text: col.path.clone(),
                nullable: col.nullable,
                timestamp_format: col.timestamp_format,
            });
        }
    }
    (v.error_count() == before).then_some(CompiledMapping { columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::ColumnMapping;

    fn column(name: &str, ty: &str, path: &str) -> ColumnMapping {
        ColumnMapping {
            name: name.into(),
            column_type: ty.into(),
            path: path.into(),
            nullable: true,
            timestamp_format: None,
        }
    }

    #[test]
    fn compiles_types_and_paths_once() {
        let mapping =
            Mapping { columns: vec![column("id", "bigint", "$.id"), column("at", " timestamptz ", "$.meta.at")] };
        let compiled = CompiledMapping::compile(&mapping).unwrap();
        let at = compiled.column("at").unwrap();
        assert_eq!((&compiled.columns()[0].ty, &at.ty), (&IcebergType::Long, &IcebergType::Timestamptz));
        assert_eq!((at.path.0.len(), at.path_text.as_str()), (2, "$.meta.at"));
    }

    #[test]
    fn every_problem_names_its_field() {
        let mut bad_format = column("n", "long", "$.n");
        bad_format.timestamp_format = Some(TimestampFormat::EpochMillis);
        let mapping = Mapping {
            columns: vec![column("a", "nope", "$.a"), column("a", "int", "a"), column("B", "int", "$.b"), bad_format],
        };
        let errors = CompiledMapping::compile(&mapping).unwrap_err();
        assert!(errors.to_string().starts_with("mapping.columns[0].type: `nope` is not an Iceberg type"), "{errors}");
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "mapping.columns[0].type",
                "mapping.columns[1].name",
                "mapping.columns[1].path",
                "mapping.columns[2].name",
                "mapping.columns[3].timestamp_format"
            ]
        );
        assert_eq!(CompiledMapping::compile(&Mapping::default()).unwrap_err().0[0].field, "mapping.columns");
    }

    #[test]
    fn partition_transforms_check_the_compiled_types() {
        let mapping = Mapping {
            columns: vec![
                column("day", "date", "$.d"),
                column("tags", "list<string>", "$.t"),
                column("s", "string", "$.s"),
            ],
        };
        let compiled = CompiledMapping::compile(&mapping).unwrap();
        let by = |column: &str, transform| PartitionField { column: column.into(), transform };
        let mut v = Validator::new();
        compiled.check_partitioning(
            &mut v,
            &[
                by("day", PartitionTransform::Month),
                by("day", PartitionTransform::Hour),
                by("tags", PartitionTransform::Identity),
                by("gone", PartitionTransform::Identity),
            ],
        );
        let errors = v.finish().unwrap_err();
        let messages: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        assert_eq!(
            messages,
            [
                "partition_by[1].column: cannot be partitioned by hour (type date)",
                "partition_by[2].column: cannot be partitioned by identity (type list<string>)",
                "partition_by[3].column: `gone` is not a column of the mapping",
            ]
        );
        let mut v = Validator::new();
        compiled
            .check_partitioning(&mut v, &[by("s", PartitionTransform::Identity), by("day", PartitionTransform::Year)]);
        assert!(v.finish().is_ok());
    }
}
