//! Adding columns to a table: a new current schema with the columns
//! appended (fresh field ids after the table's last one), in a metadata file
//! of its own, swapped in like a commit. No data file is rewritten: every
//! reader projects by field id, so rows written before read the new columns
//! as null.

use std::sync::Arc;

use iceberg::spec::{NestedField, NestedFieldRef, Schema, TableMetadataBuilder, Type};

use super::catalog;
use super::commit::write_next_metadata;
use super::error::{ensure_valid, ResultExt};
use super::{LakeResult, LoadedTable, Warehouse};
use crate::coord::Scope;

/// Appends optional top-level primitive `columns` to `table`'s schema and
/// swaps its pointer in a short transaction of `scope`'s, opened once the
/// metadata file is written (a `Conflict` if another writer moved it first:
/// reload and decide again). Returns the table as of the change.
pub async fn add_columns(
    scope: Scope<'_>,
    wh: &Warehouse,
    table: &LoadedTable,
    columns: &[(&str, Type)],
) -> LakeResult<LoadedTable> {
    let ident = table.ident();
    let base = &table.metadata;
    let current = base.current_schema();
    let mut fields: Vec<NestedFieldRef> = current.as_struct().fields().to_vec();
    for ((name, ty), id) in columns.iter().zip(base.last_column_id() + 1..) {
        ensure_valid!(current.field_by_name(name).is_none(), "table {ident} already has a column {name:?}");
        ensure_valid!(ty.is_primitive(), "table {ident}: only primitive columns can be added, not {name:?} ({ty})");
        fields.push(Arc::new(NestedField::optional(id, *name, ty.clone())));
    }
    let schema = Schema::builder()
        .with_schema_id(current.schema_id() + 1)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(fields)
        .build()
        .with_context(|| format!("table {ident}: the new schema"))?;
    let built = TableMetadataBuilder::new_from_metadata(base.clone(), Some(table.metadata_location.clone()))
        .add_current_schema(schema)
        .and_then(|builder| builder.build())
        .with_context(|| format!("table {ident}: building the next metadata"))?;
    let new_location =
        write_next_metadata(wh, table, &built.metadata).await.map_err(|e| e.context(format!("table {ident}")))?;
    let swapped = async {
        let mut tx = scope.begin().await?;
        catalog::swap(&mut tx, wh, &table.namespace, &table.name, &table.metadata_location, &new_location).await?;
        LakeResult::Ok(tx)
    };
    let tx = match swapped.await {
        Ok(tx) => tx,
        Err(e) => {
            let _ = wh.file_io.delete(&new_location).await;
            return Err(e);
        }
    };
    // A commit of unknown outcome leaves the file: it may be the table's now.
    tx.commit().await.with_context(|| format!("table {ident}: committing the schema change"))?;
    tracing::info!(table = %ident, columns = ?columns.iter().map(|c| c.0).collect::<Vec<_>>(), "added columns");
    Ok(LoadedTable {
        namespace: table.namespace.clone(),
        name: table.name.clone(),
        metadata_location: new_location,
        metadata: built.metadata,
    })
}
