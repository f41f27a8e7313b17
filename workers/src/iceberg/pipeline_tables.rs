//! A pipeline's two tables: the table its mapping describes, partitioned as
//! asked, and its dead-letter table `<table>_dead_letter`. The control plane
//! creates them with the pipeline (so readers see them before the first
//! message); a worker creates them if they are missing, and brings a
//! dead-letter table made by an earlier release up to the current columns.

use iceberg::spec::Transform;
use icehouse_api::pipelines::{CompiledMapping, PartitionField, PartitionTransform};

use super::{add_columns, create_table, LakeError, LakeResult, LoadedTable, Warehouse};
use crate::coord::Scope;
use crate::mapping;

/// The dead-letter table's name for a pipeline's table.
pub fn dead_letter_table_name(table: &str) -> String {
    format!("{table}_dead_letter")
}

/// Creates (idempotently) a pipeline's table and its dead-letter table, in
/// short transactions of `scope`'s (see [`create_table`]).
pub async fn create_pipeline_tables(
    scope: Scope<'_>,
    warehouse: &Warehouse,
    namespace: &str,
    table: &str,
    mapping: &CompiledMapping,
    partition_by: &[PartitionField],
) -> LakeResult<(LoadedTable, LoadedTable)> {
    let partition: Vec<(&str, Transform)> =
        partition_by.iter().map(|p| (p.column.as_str(), transform(p.transform))).collect();
    let schema = mapping::table_schema(mapping)
        .map_err(|e| LakeError::invalid(format!("table {namespace}.{table}: the mapping: {e:#}")))?;
    let main = create_table(scope, warehouse, namespace, table, schema, &partition).await?;
    let dead_letter = dead_letter_table_name(table);
    let dead = create_table(scope, warehouse, namespace, &dead_letter, mapping::dead_letter_schema(), &[]).await?;
    let dead = dead_letter_up_to_date(scope, warehouse, dead).await?;
    Ok((main, dead))
}

/// A dead-letter table made before columns were added to the dead-letter
/// schema gets them (see [`mapping::DEAD_LETTER_ADDED`]); any other
/// difference from the schema is refused, as rows could not be written.
async fn dead_letter_up_to_date(
    scope: Scope<'_>,
    warehouse: &Warehouse,
    table: LoadedTable,
) -> LakeResult<LoadedTable> {
    let want = mapping::dead_letter_schema();
    let have = table.metadata.current_schema();
    let names = |s: &iceberg::spec::Schema| s.as_struct().fields().iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let (want_names, have_names) = (names(&want), names(have));
    if want_names == have_names {
        return Ok(table);
    }
    // Only columns added since, missing from the end, can be made good.
    let missing = &want_names[have_names.len().min(want_names.len())..];
    if !want_names.starts_with(&have_names) || missing.len() > mapping::DEAD_LETTER_ADDED.len() {
        return Err(LakeError::invalid(format!(
            "table {}: its columns {have_names:?} are not a dead-letter table's",
            table.ident()
        )));
    }
    let columns: Vec<(&str, iceberg::spec::Type)> = missing
        .iter()
        .map(|name| {
            (name.as_str(), want.field_by_name(name).expect("a column of the schema").field_type.as_ref().clone())
        })
        .collect();
    add_columns(scope, warehouse, &table, &columns).await
}

fn transform(t: PartitionTransform) -> Transform {
    match t {
        PartitionTransform::Identity => Transform::Identity,
        PartitionTransform::Year => Transform::Year,
        PartitionTransform::Month => Transform::Month,
        PartitionTransform::Day => Transform::Day,
        PartitionTransform::Hour => Transform::Hour,
    }
}
