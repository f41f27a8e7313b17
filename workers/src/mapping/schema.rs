//! The Iceberg schema of a pipeline's table and of every dead-letter table.

use std::sync::Arc;

use anyhow::{bail, Context};
use iceberg::spec::{ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type};
use icehouse_api::pipelines::{IcebergType, Mapping};

/// The schema a mapping stands for: one top-level field per column, in order.
///
/// Field ids follow Iceberg's own assignment for a new table (the catalog
/// re-assigns ids on create exactly this way): the top-level fields get
/// 1..=N, then each nested type in column order, a struct's own fields first
/// and their children after. Nested fields are optional, as a mapping type
/// cannot say otherwise; map keys are required, as Iceberg wants.
pub fn table_schema(mapping: &Mapping) -> anyhow::Result<Schema> {
    if mapping.columns.is_empty() {
        bail!("a mapping needs at least one column");
    }
    let mut columns = Vec::with_capacity(mapping.columns.len());
    for column in &mapping.columns {
        let ty =
            IcebergType::parse(&column.column_type).map_err(|e| anyhow::anyhow!("column `{}`: {e}", column.name))?;
        columns.push((column.name.clone(), ty, !column.nullable));
    }
    build_schema(columns).context("building the table schema of the mapping")
}

/// The schema of every dead-letter table: where the message came from, its
/// raw bytes, and why it was rejected.
pub fn dead_letter_schema() -> Schema {
    build_schema(dead_letter_columns()).expect("the dead-letter schema is valid")
}

/// The dead-letter table's columns: (name, type, required).
pub(crate) fn dead_letter_columns() -> Vec<(String, IcebergType, bool)> {
    use IcebergType as T;
    let field = |name: &str, ty: IcebergType, required: bool| (name.to_string(), ty, required);
    vec![
        field("topic", T::String, true),
        field("partition", T::Int, true),
        field("offset", T::Long, true),
        field("kafka_timestamp", T::Timestamptz, false),
        field("key", T::Binary, false),
        field("value", T::Binary, false),
        // Kafka lets a header repeat: every header is kept, in order, repeats included.
        field("headers", T::Map(Box::new(T::String), Box::new(T::Binary)), false),
        field("error_stage", T::String, true),
        field("error_kind", T::String, true),
        field("error_message", T::String, true),
        field("pipeline_id", T::String, true),
        field("received_at", T::Timestamptz, true),
    ]
}

fn build_schema(columns: Vec<(String, IcebergType, bool)>) -> anyhow::Result<Schema> {
    let mut next_id = 1;
    let fields = struct_fields(&columns, &mut next_id);
    Ok(Schema::builder().with_schema_id(0).with_fields(fields).build()?)
}

/// Ids for a struct's own fields first, then for what is nested in them, in
/// order (iceberg-rust's `ReassignFieldIds`, Java's `AssignFreshIds`).
fn struct_fields(fields: &[(String, IcebergType, bool)], next_id: &mut i32) -> Vec<NestedFieldRef> {
    let first = *next_id;
    *next_id += fields.len() as i32;
    fields
        .iter()
        .zip(first..)
        .map(|((name, ty, required), id)| Arc::new(NestedField::new(id, name, iceberg_type(ty, next_id), *required)))
        .collect()
}

fn iceberg_type(ty: &IcebergType, next_id: &mut i32) -> Type {
    let mut take_id = || {
        let id = *next_id;
        *next_id += 1;
        id
    };
    match ty {
        IcebergType::Boolean => Type::Primitive(PrimitiveType::Boolean),
        IcebergType::Int => Type::Primitive(PrimitiveType::Int),
        IcebergType::Long => Type::Primitive(PrimitiveType::Long),
        IcebergType::Float => Type::Primitive(PrimitiveType::Float),
        IcebergType::Double => Type::Primitive(PrimitiveType::Double),
        IcebergType::Decimal { precision, scale } => {
            Type::Primitive(PrimitiveType::Decimal { precision: u32::from(*precision), scale: u32::from(*scale) })
        }
        IcebergType::String => Type::Primitive(PrimitiveType::String),
        IcebergType::Uuid => Type::Primitive(PrimitiveType::Uuid),
        IcebergType::Date => Type::Primitive(PrimitiveType::Date),
        IcebergType::Time => Type::Primitive(PrimitiveType::Time),
        IcebergType::Timestamp => Type::Primitive(PrimitiveType::Timestamp),
        IcebergType::Timestamptz => Type::Primitive(PrimitiveType::Timestamptz),
        IcebergType::Binary => Type::Primitive(PrimitiveType::Binary),
        IcebergType::List(element) => {
            let id = take_id();
            let element = iceberg_type(element, next_id);
            Type::List(ListType::new(Arc::new(NestedField::list_element(id, element, false))))
        }
        IcebergType::Map(key, value) => {
            let key_id = take_id();
            let key = iceberg_type(key, next_id);
            let value_id = *next_id;
            *next_id += 1;
            let value = iceberg_type(value, next_id);
            Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(key_id, key)),
                Arc::new(NestedField::map_value_element(value_id, value, false)),
            ))
        }
        IcebergType::Struct(fields) => {
            let fields: Vec<_> = fields.iter().map(|(name, ty)| (name.clone(), ty.clone(), false)).collect();
            Type::Struct(StructType::new(struct_fields(&fields, next_id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::datatypes::{DataType, TimeUnit};
    use iceberg::spec::{FormatVersion, PartitionSpec, SortOrder, TableMetadataBuilder};
    use icehouse_api::pipelines::{ColumnMapping, TimestampFormat};

    use super::*;

    fn column(name: &str, ty: &str, path: &str, nullable: bool) -> ColumnMapping {
        ColumnMapping {
            name: name.into(),
            column_type: ty.into(),
            path: path.into(),
            nullable,
            timestamp_format: None::<TimestampFormat>,
        }
    }

    fn every_type() -> Mapping {
        Mapping {
            columns: vec![
                column("b", "boolean", "$.b", true),
                column("i", "int", "$.i", false),
                column("l", "long", "$.l", true),
                column("f", "float", "$.f", true),
                column("d", "double", "$.d", true),
                column("dec", "decimal(10,2)", "$.dec", false),
                column("s", "string", "$.s", true),
                column("u", "uuid", "$.u", true),
                column("dt", "date", "$.dt", true),
                column("t", "time", "$.t", true),
                column("ts", "timestamp", "$.ts", true),
                column("tstz", "timestamptz", "$.tstz", false),
                column("bin", "binary", "$.bin", true),
                column("tags", "list<string>", "$.tags", true),
                column("attrs", "map<string,long>", "$.attrs", true),
                column(
                    "customer",
                    "struct<id:uuid,address:struct<city:string,zip:int>,phones:list<string>>",
                    "$.customer",
                    false,
                ),
                column("matrix", "list<list<double>>", "$.matrix", true),
            ],
        }
    }

    fn prim(p: PrimitiveType) -> Type {
        Type::Primitive(p)
    }

    #[test]
    fn every_type_has_iceberg_ids_required_flags_and_types() {
        let schema = table_schema(&every_type()).unwrap();
        let opt = |id, name: &str, ty| Arc::new(NestedField::optional(id, name, ty));
        let req = |id, name: &str, ty| Arc::new(NestedField::required(id, name, ty));
        let expected = vec![
            opt(1, "b", prim(PrimitiveType::Boolean)),
            req(2, "i", prim(PrimitiveType::Int)),
            opt(3, "l", prim(PrimitiveType::Long)),
            opt(4, "f", prim(PrimitiveType::Float)),
            opt(5, "d", prim(PrimitiveType::Double)),
            req(6, "dec", prim(PrimitiveType::Decimal { precision: 10, scale: 2 })),
            opt(7, "s", prim(PrimitiveType::String)),
            opt(8, "u", prim(PrimitiveType::Uuid)),
            opt(9, "dt", prim(PrimitiveType::Date)),
            opt(10, "t", prim(PrimitiveType::Time)),
            opt(11, "ts", prim(PrimitiveType::Timestamp)),
            req(12, "tstz", prim(PrimitiveType::Timestamptz)),
            opt(13, "bin", prim(PrimitiveType::Binary)),
            opt(
                14,
                "tags",
                Type::List(ListType::new(Arc::new(NestedField::list_element(18, prim(PrimitiveType::String), false)))),
            ),
            opt(
                15,
                "attrs",
                Type::Map(MapType::new(
                    Arc::new(NestedField::map_key_element(19, prim(PrimitiveType::String))),
                    Arc::new(NestedField::map_value_element(20, prim(PrimitiveType::Long), false)),
                )),
            ),
            req(
                16,
                "customer",
                Type::Struct(StructType::new(vec![
                    opt(21, "id", prim(PrimitiveType::Uuid)),
                    opt(
                        22,
                        "address",
                        Type::Struct(StructType::new(vec![
                            opt(24, "city", prim(PrimitiveType::String)),
                            opt(25, "zip", prim(PrimitiveType::Int)),
                        ])),
                    ),
                    opt(
                        23,
                        "phones",
                        Type::List(ListType::new(Arc::new(NestedField::list_element(
                            26,
                            prim(PrimitiveType::String),
                            false,
                        )))),
                    ),
                ])),
            ),
            opt(
                17,
                "matrix",
                Type::List(ListType::new(Arc::new(NestedField::list_element(
                    27,
                    Type::List(ListType::new(Arc::new(NestedField::list_element(
                        28,
                        prim(PrimitiveType::Double),
                        false,
                    )))),
                    false,
                )))),
            ),
        ];
        assert_eq!(schema.as_struct().fields(), expected.as_slice());
        assert_eq!(schema.highest_field_id(), 28);
    }

    #[test]
    fn ids_survive_table_creation() {
        // Creating a table re-assigns field ids; ours must already be the ones it picks.
        for schema in [table_schema(&every_type()).unwrap(), dead_letter_schema()] {
            let metadata = TableMetadataBuilder::new(
                schema.clone(),
                PartitionSpec::unpartition_spec(),
                SortOrder::unsorted_order(),
                "file:///tmp/t".into(),
                FormatVersion::V2,
                HashMap::new(),
            )
            .unwrap()
            .build()
            .unwrap()
            .metadata;
            assert_eq!(metadata.current_schema().as_struct(), schema.as_struct());
        }
    }

    #[test]
    fn arrow_schema_carries_ids_and_types() {
        let schema = table_schema(&every_type()).unwrap();
        let arrow = iceberg::arrow::schema_to_arrow_schema(&schema).unwrap();
        let id = |f: &arrow::datatypes::Field| f.metadata()["PARQUET:field_id"].clone();
        assert_eq!(arrow.field(1).data_type(), &DataType::Int32);
        assert!(!arrow.field(1).is_nullable());
        assert_eq!(arrow.field(5).data_type(), &DataType::Decimal128(10, 2));
        assert_eq!(arrow.field(7).data_type(), &DataType::FixedSizeBinary(16));
        assert_eq!(arrow.field(11).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())));
        assert_eq!(arrow.field(12).data_type(), &DataType::LargeBinary);
        let DataType::List(element) = arrow.field(13).data_type() else { panic!("tags is a list") };
        assert_eq!((id(arrow.field(13)), id(element)), ("14".to_string(), "18".to_string()));
    }

    #[test]
    fn dead_letter_fields() {
        let schema = dead_letter_schema();
        let got: Vec<(i32, String, bool, String)> = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.name.clone(), f.required, f.field_type.to_string()))
            .collect();
        let want = [
            (1, "topic", true, "string"),
            (2, "partition", true, "int"),
            (3, "offset", true, "long"),
            (4, "kafka_timestamp", false, "timestamptz"),
            (5, "key", false, "binary"),
            (6, "value", false, "binary"),
            (7, "headers", false, "map"),
            (8, "error_stage", true, "string"),
            (9, "error_kind", true, "string"),
            (10, "error_message", true, "string"),
            (11, "pipeline_id", true, "string"),
            (12, "received_at", true, "timestamptz"),
        ];
        let want: Vec<_> = want.iter().map(|(i, n, r, t)| (*i, n.to_string(), *r, t.to_string())).collect();
        assert_eq!(got, want);
        let Type::Map(headers) = schema.field_by_id(7).unwrap().field_type.as_ref() else { panic!("headers is a map") };
        assert_eq!(*headers.key_field, NestedField::map_key_element(13, prim(PrimitiveType::String)));
        assert_eq!(*headers.value_field, NestedField::map_value_element(14, prim(PrimitiveType::Binary), false));
    }

    #[test]
    fn bad_mappings_are_errors() {
        assert_eq!(table_schema(&Mapping::default()).unwrap_err().to_string(), "a mapping needs at least one column");
        let bad = Mapping { columns: vec![column("x", "varchar", "$.x", true)] };
        assert_eq!(
            table_schema(&bad).unwrap_err().to_string(),
            "column `x`: `varchar` is not an Iceberg type: unknown type `varchar`"
        );
    }
}
