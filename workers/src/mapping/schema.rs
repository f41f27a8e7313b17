//! The Iceberg schema of a pipeline's table and of every dead-letter table,
//! and how an existing table differs from what a mapping stands for: until
//! schema evolution exists, a mapping whose schema is not the table's cannot
//! run (the decoder refuses the table's Arrow schema), so the control plane
//! refuses it up front with these differences.

use std::sync::Arc;

use anyhow::Context;
use iceberg::spec::{
    ListType, MapType, NestedField, NestedFieldRef, PartitionSpec, PrimitiveType, Schema, StructType, Transform, Type,
};
use icehouse_api::pipelines::{CompiledMapping, IcebergType, PartitionField, PartitionTransform};

/// The schema a mapping stands for: one top-level field per column, in order.
///
/// Field ids follow Iceberg's own assignment for a new table (the catalog
/// re-assigns ids on create exactly this way): the top-level fields get
/// 1..=N, then each nested type in column order, a struct's own fields first
/// and their children after. Nested fields are optional, as a mapping type
/// cannot say otherwise; map keys are required, as Iceberg wants.
pub fn table_schema(mapping: &CompiledMapping) -> anyhow::Result<Schema> {
    let columns = mapping.columns().iter().map(|c| (c.name.clone(), c.ty.clone(), !c.nullable)).collect();
    build_schema(columns).context("building the table schema of the mapping")
}

/// The schema of every dead-letter table: where the message came from, its
/// raw bytes, and why it was rejected.
pub fn dead_letter_schema() -> Schema {
    build_schema(dead_letter_columns()).expect("the dead-letter schema is valid")
}

/// The dead-letter table's columns: (name, type, required). Columns added
/// later come last and are optional, so tables made before them are
/// brought up to date by adding them ([`DEAD_LETTER_ADDED`]).
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
        // Added with `dead_letter.max_value_bytes`: whether the key, value or a
        // header value was cut, and the original lengths.
        field("truncated", T::Boolean, false),
        field("key_bytes", T::Long, false),
        field("value_bytes", T::Long, false),
    ]
}

/// The dead-letter columns added after the first release, in order.
pub const DEAD_LETTER_ADDED: [&str; 3] = ["truncated", "key_bytes", "value_bytes"];

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

/// One way a table's schema is not the one a mapping stands for. Columns are
/// named by their path in the schema: `customer.address.zip` for a struct
/// field, `tags.element` for a list's elements, `attrs.key` / `attrs.value`
/// for a map's (Iceberg's own names for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaDifference {
    /// The mapping has the column, the table does not.
    NotInTable {
        column: String,
    },
    /// The table has the column, the mapping does not.
    NotInMapping {
        column: String,
    },
    /// Types in the mapping's syntax (`long`, `list<string>`, `struct<a:int>`).
    Type {
        column: String,
        table: String,
        mapping: String,
    },
    Nullability {
        column: String,
        table_required: bool,
    },
    /// The same columns (or struct fields) in another order: the decoder
    /// writes columns by position, so order counts. `table` is the table's order.
    Order {
        parent: Option<String>,
        table: Vec<String>,
    },
}

impl std::fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let required = |yes: bool| if yes { "required" } else { "nullable" };
        match self {
            SchemaDifference::NotInTable { column } => write!(f, "column `{column}` is not in the table"),
            SchemaDifference::NotInMapping { column } => {
                write!(f, "the table's column `{column}` is not in the mapping")
            }
            SchemaDifference::Type { column, table, mapping } => {
                write!(f, "column `{column}`: table has {table}, mapping gives {mapping}")
            }
            SchemaDifference::Nullability { column, table_required } => write!(
                f,
                "column `{column}`: table has {}, mapping gives {}",
                required(*table_required),
                required(!*table_required)
            ),
            SchemaDifference::Order { parent: None, table } => {
                write!(f, "the columns are in another order than the table's ({})", table.join(", "))
            }
            SchemaDifference::Order { parent: Some(parent), table } => {
                write!(f, "the fields of `{parent}` are in another order than the table's ({})", table.join(", "))
            }
        }
    }
}

/// How `table` (a table's current schema, read from its metadata) differs
/// from `mapping` (what [`table_schema`] makes of a mapping), column by
/// column: missing and extra columns, types, nullability, nesting and order.
/// Field ids are not compared: the decoder takes them from the table. Empty
/// when the mapping can write to the table as it is.
pub fn schema_differences(table: &Schema, mapping: &Schema) -> Vec<SchemaDifference> {
    let mut out = Vec::new();
    compare_fields(None, table.as_struct().fields(), mapping.as_struct().fields(), &mut out);
    out
}

fn compare_fields(
    parent: Option<&str>,
    table: &[NestedFieldRef],
    mapping: &[NestedFieldRef],
    out: &mut Vec<SchemaDifference>,
) {
    let path = |name: &str| parent.map_or_else(|| name.to_string(), |p| format!("{p}.{name}"));
    let mut same_names = table.len() == mapping.len();
    for wanted in mapping {
        match table.iter().find(|t| t.name == wanted.name) {
            Some(have) => compare_field(&path(&wanted.name), have, wanted, out),
            None => {
                same_names = false;
                out.push(SchemaDifference::NotInTable { column: path(&wanted.name) });
            }
        }
    }
    for have in table {
        if !mapping.iter().any(|m| m.name == have.name) {
            out.push(SchemaDifference::NotInMapping { column: path(&have.name) });
        }
    }
    if same_names && table.iter().zip(mapping).any(|(t, m)| t.name != m.name) {
        let table = table.iter().map(|f| f.name.clone()).collect();
        out.push(SchemaDifference::Order { parent: parent.map(str::to_string), table });
    }
}

fn compare_field(path: &str, table: &NestedField, mapping: &NestedField, out: &mut Vec<SchemaDifference>) {
    if table.required != mapping.required {
        out.push(SchemaDifference::Nullability { column: path.to_string(), table_required: table.required });
    }
    match (table.field_type.as_ref(), mapping.field_type.as_ref()) {
        (Type::Primitive(t), Type::Primitive(m)) if t == m => {}
        (Type::Struct(t), Type::Struct(m)) => compare_fields(Some(path), t.fields(), m.fields(), out),
        (Type::List(t), Type::List(m)) => {
            compare_field(&format!("{path}.element"), &t.element_field, &m.element_field, out)
        }
        (Type::Map(t), Type::Map(m)) => {
            compare_field(&format!("{path}.key"), &t.key_field, &m.key_field, out);
            compare_field(&format!("{path}.value"), &t.value_field, &m.value_field, out);
        }
        (t, m) => {
            out.push(SchemaDifference::Type { column: path.to_string(), table: type_text(t), mapping: type_text(m) })
        }
    }
}

/// A type as a mapping writes it; iceberg-rust's own `Display` prints
/// nested types without their contents (`list`, `struct<int>`).
fn type_text(ty: &Type) -> String {
    match ty {
        Type::Primitive(PrimitiveType::Decimal { precision, scale }) => format!("decimal({precision},{scale})"),
        Type::Primitive(p) => p.to_string(),
        Type::List(l) => format!("list<{}>", type_text(&l.element_field.field_type)),
        Type::Map(m) => format!("map<{},{}>", type_text(&m.key_field.field_type), type_text(&m.value_field.field_type)),
        Type::Struct(s) => {
            let fields: Vec<String> =
                s.fields().iter().map(|f| format!("{}:{}", f.name, type_text(&f.field_type))).collect();
            format!("struct<{}>", fields.join(","))
        }
    }
}

/// How a table's partition spec differs from `partition_by`, e.g.
/// "the table is partitioned by day(placed_at), the pipeline asks for
/// hour(placed_at)"; `None` when they agree. Fields are compared by source
/// column name and transform, in order.
pub fn partition_difference(schema: &Schema, spec: &PartitionSpec, partition_by: &[PartitionField]) -> Option<String> {
    let table: Vec<String> = spec
        .fields()
        .iter()
        .map(|f| {
            let column = schema.name_by_field_id(f.source_id).unwrap_or("?");
            match f.transform {
                Transform::Identity => column.to_string(),
                transform => format!("{transform}({column})"),
            }
        })
        .collect();
    let wanted: Vec<String> = partition_by
        .iter()
        .map(|p| {
            let transform = match p.transform {
                PartitionTransform::Identity => return p.column.clone(),
                PartitionTransform::Year => "year",
                PartitionTransform::Month => "month",
                PartitionTransform::Day => "day",
                PartitionTransform::Hour => "hour",
            };
            format!("{transform}({})", p.column)
        })
        .collect();
    (table != wanted).then(|| {
        let table =
            if table.is_empty() { "not partitioned".into() } else { format!("partitioned by {}", table.join(", ")) };
        let wanted = if wanted.is_empty() { "no partitioning".into() } else { wanted.join(", ") };
        format!("the table is {table}, the pipeline asks for {wanted}")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::datatypes::{DataType, TimeUnit};
    use iceberg::spec::{FormatVersion, PartitionSpec, SortOrder, TableMetadataBuilder};
    use icehouse_api::pipelines::{ColumnMapping, Mapping, TimestampFormat};

    use super::*;

    fn schema_of(mapping: &Mapping) -> Schema {
        table_schema(&CompiledMapping::compile(mapping).unwrap()).unwrap()
    }

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
        let schema = schema_of(&every_type());
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
        for schema in [schema_of(&every_type()), dead_letter_schema()] {
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
        let schema = schema_of(&every_type());
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
            (13, "truncated", false, "boolean"),
            (14, "key_bytes", false, "long"),
            (15, "value_bytes", false, "long"),
        ];
        let want: Vec<_> = want.iter().map(|(i, n, r, t)| (*i, n.to_string(), *r, t.to_string())).collect();
        assert_eq!(got, want);
        let Type::Map(headers) = schema.field_by_id(7).unwrap().field_type.as_ref() else { panic!("headers is a map") };
        assert_eq!(*headers.key_field, NestedField::map_key_element(16, prim(PrimitiveType::String)));
        assert_eq!(*headers.value_field, NestedField::map_value_element(17, prim(PrimitiveType::Binary), false));
    }

    fn orders(columns: &[(&str, &str, bool)]) -> Schema {
        let columns = columns.iter().map(|(name, ty, nullable)| column(name, ty, &format!("$.{name}"), *nullable));
        schema_of(&Mapping { columns: columns.collect() })
    }

    fn differences(table: &Schema, mapping: &Schema) -> String {
        schema_differences(table, mapping).iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn the_same_schema_has_no_differences_whatever_the_paths_formats_and_ids() {
        let schema = schema_of(&every_type());
        assert_eq!(schema_differences(&schema, &schema), vec![]);
        // Paths and timestamp formats are not in the schema at all.
        let mut moved = every_type();
        for c in &mut moved.columns {
            c.path = format!("$.moved.{}", c.name);
        }
        moved.columns[10].timestamp_format = Some(TimestampFormat::EpochMillis);
        assert_eq!(schema_differences(&schema, &schema_of(&moved)), vec![]);
        // A table whose ids were assigned otherwise (say, by another engine).
        let other_ids = Schema::builder()
            .with_fields(vec![
                Arc::new(NestedField::required(7, "id", prim(PrimitiveType::Long))),
                Arc::new(NestedField::optional(
                    3,
                    "tags",
                    Type::List(ListType::new(Arc::new(NestedField::list_element(
                        9,
                        prim(PrimitiveType::String),
                        false,
                    )))),
                )),
            ])
            .build()
            .unwrap();
        let mapping = orders(&[("id", "long", false), ("tags", "list<string>", true)]);
        assert_eq!(schema_differences(&other_ids, &mapping), vec![]);
    }

    #[test]
    fn columns_that_differ_are_named_with_both_sides() {
        let table = orders(&[("id", "long", false), ("qty", "long", true), ("price", "decimal(10,2)", true)]);
        let mapping = orders(&[
            ("id", "long", true),
            ("qty", "string", true),
            ("price", "decimal(12,2)", true),
            ("note", "string", true),
        ]);
        assert_eq!(
            differences(&table, &mapping),
            "column `id`: table has required, mapping gives nullable; \
             column `qty`: table has long, mapping gives string; \
             column `price`: table has decimal(10,2), mapping gives decimal(12,2); \
             column `note` is not in the table"
        );
        let fewer = orders(&[("id", "long", false), ("qty", "long", true)]);
        assert_eq!(differences(&table, &fewer), "the table's column `price` is not in the mapping");
        let renamed = orders(&[("id", "long", false), ("quantity", "long", true), ("price", "decimal(10,2)", true)]);
        assert_eq!(
            differences(&table, &renamed),
            "column `quantity` is not in the table; the table's column `qty` is not in the mapping"
        );
    }

    #[test]
    fn order_counts_because_the_decoder_writes_by_position() {
        let table = orders(&[("id", "long", false), ("qty", "long", true)]);
        let swapped = orders(&[("qty", "long", true), ("id", "long", false)]);
        assert_eq!(differences(&table, &swapped), "the columns are in another order than the table's (id, qty)");
        let table = orders(&[("c", "struct<a:int,b:string>", true)]);
        let swapped = orders(&[("c", "struct<b:string,a:int>", true)]);
        assert_eq!(differences(&table, &swapped), "the fields of `c` are in another order than the table's (a, b)");
    }

    #[test]
    fn nested_differences_name_the_nested_field() {
        let table = orders(&[
            ("customer", "struct<id:uuid,address:struct<city:string,zip:int>>", true),
            ("tags", "list<string>", true),
            ("attrs", "map<string,long>", true),
            ("items", "list<struct<sku:string>>", true),
            ("when", "timestamptz", true),
        ]);
        let mapping = orders(&[
            ("customer", "struct<id:uuid,address:struct<city:string,zip:string,street:string>>", true),
            ("tags", "list<long>", true),
            ("attrs", "map<string,double>", true),
            ("items", "list<string>", true),
            ("when", "struct<at:timestamptz>", true),
        ]);
        assert_eq!(
            differences(&table, &mapping),
            "column `customer.address.zip`: table has int, mapping gives string; \
             column `customer.address.street` is not in the table; \
             column `tags.element`: table has string, mapping gives long; \
             column `attrs.value`: table has long, mapping gives double; \
             column `items.element`: table has struct<sku:string>, mapping gives string; \
             column `when`: table has timestamptz, mapping gives struct<at:timestamptz>"
        );
    }

    #[test]
    fn partition_specs_compare_by_column_and_transform() {
        let schema = orders(&[("id", "long", false), ("placed_at", "timestamptz", true), ("city", "string", true)]);
        let spec = |fields: &[(&str, Transform)]| {
            crate::iceberg::partition_by(&schema, fields).unwrap().bind(schema.clone()).unwrap()
        };
        let field = |column: &str, transform| PartitionField { column: column.into(), transform };
        let day = spec(&[("placed_at", Transform::Day), ("city", Transform::Identity)]);
        let same = [field("placed_at", PartitionTransform::Day), field("city", PartitionTransform::Identity)];
        assert_eq!(partition_difference(&schema, &day, &same), None);
        assert_eq!(
            partition_difference(&schema, &day, &[field("placed_at", PartitionTransform::Hour)]).unwrap(),
            "the table is partitioned by day(placed_at), city, the pipeline asks for hour(placed_at)"
        );
        assert_eq!(
            partition_difference(&schema, &spec(&[]), &same[1..]).unwrap(),
            "the table is not partitioned, the pipeline asks for city"
        );
    }
}
