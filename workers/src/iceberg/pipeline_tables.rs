//! A pipeline's two tables: the table its mapping describes, partitioned as
//! asked, and its dead-letter table `<table>_dead_letter`. The control plane
//! creates them with the pipeline (so readers see them before the first
//! message); a worker creates them if they are missing.

use iceberg::spec::Transform;
use icehouse_api::pipelines::{CompiledMapping, PartitionField, PartitionTransform};
use sqlx::PgConnection;

use super::{create_table, LakeError, LakeResult, LoadedTable, Warehouse};
use crate::mapping;

/// The dead-letter table's name for a pipeline's table.
pub fn dead_letter_table_name(table: &str) -> String {
    format!("{table}_dead_letter")
}

/// Creates (idempotently) a pipeline's table and its dead-letter table,
/// inside the caller's transaction.
pub async fn create_pipeline_tables(
    conn: &mut PgConnection,
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
    let main = create_table(conn, warehouse, namespace, table, schema, &partition).await?;
    let dead_letter = dead_letter_table_name(table);
    let dead = create_table(conn, warehouse, namespace, &dead_letter, mapping::dead_letter_schema(), &[]).await?;
    Ok((main, dead))
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
