//! An Arrow builder per column, typed by the column's Arrow field (so the
//! arrays carry the field ids of the Iceberg schema), filled cell by cell.

use std::sync::Arc;

use anyhow::bail;
use arrow::array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder, Float32Builder, Float64Builder,
    Int32Builder, Int64Builder, LargeBinaryBuilder, NullBufferBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::array::{ArrayRef, ListArray, MapArray, StructArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, TimeUnit};

use super::cell::{Cell, Ty};

/// Bytes reserved per string or binary value up front.
const BYTES_PER_VALUE: usize = 16;

pub(crate) enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder),
    Utf8(StringBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Binary(LargeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        validity: NullBufferBuilder,
        values: Box<ColumnBuilder>,
    },
    Map {
        entries: FieldRef,
        key_value: Fields,
        offsets: Vec<i32>,
        validity: NullBufferBuilder,
        keys: Box<ColumnBuilder>,
        values: Box<ColumnBuilder>,
    },
    Struct {
        fields: Fields,
        validity: NullBufferBuilder,
        children: Vec<ColumnBuilder>,
    },
}

impl ColumnBuilder {
    /// A builder of `data_type` arrays from cells converted to `ty`, or an
    /// error when the two do not describe the same type.
    pub(crate) fn new(ty: &Ty, data_type: &DataType, capacity: usize) -> anyhow::Result<ColumnBuilder> {
        use ColumnBuilder as B;
        Ok(match (ty, data_type) {
            (Ty::Boolean, DataType::Boolean) => B::Boolean(BooleanBuilder::with_capacity(capacity)),
            (Ty::Int, DataType::Int32) => B::Int32(Int32Builder::with_capacity(capacity)),
            (Ty::Long, DataType::Int64) => B::Int64(Int64Builder::with_capacity(capacity)),
            (Ty::Float, DataType::Float32) => B::Float32(Float32Builder::with_capacity(capacity)),
            (Ty::Double, DataType::Float64) => B::Float64(Float64Builder::with_capacity(capacity)),
            (Ty::Decimal { precision, scale }, DataType::Decimal128(p, s))
                if p == precision && i16::from(*s) == i16::from(*scale) =>
            {
                B::Decimal(Decimal128Builder::with_capacity(capacity).with_data_type(data_type.clone()))
            }
            (Ty::String, DataType::Utf8) => B::Utf8(StringBuilder::with_capacity(capacity, capacity * BYTES_PER_VALUE)),
            (Ty::Uuid, DataType::FixedSizeBinary(16)) => B::Uuid(FixedSizeBinaryBuilder::with_capacity(capacity, 16)),
            (Ty::Binary, DataType::LargeBinary) => {
                B::Binary(LargeBinaryBuilder::with_capacity(capacity, capacity * BYTES_PER_VALUE))
            }
            (Ty::Date(_), DataType::Date32) => B::Date(Date32Builder::with_capacity(capacity)),
            (Ty::Time, DataType::Time64(TimeUnit::Microsecond)) => {
                B::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            (Ty::Timestamp(_), DataType::Timestamp(TimeUnit::Microsecond, None))
            | (Ty::Timestamptz(_), DataType::Timestamp(TimeUnit::Microsecond, Some(_))) => {
                B::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_data_type(data_type.clone()))
            }
            (Ty::List(element), DataType::List(field)) => B::List {
                field: field.clone(),
                offsets: offsets(capacity),
                validity: NullBufferBuilder::new(capacity),
                values: Box::new(ColumnBuilder::new(element, field.data_type(), capacity)?),
            },
            (Ty::Map(key, value), DataType::Map(entries, false)) => {
                let DataType::Struct(key_value) = entries.data_type() else {
                    bail!("Arrow map entries must be a struct, not {}", entries.data_type());
                };
                if key_value.len() != 2 {
                    bail!("Arrow map entries must have a key and a value, not {} fields", key_value.len());
                }
                B::Map {
                    entries: entries.clone(),
                    key_value: key_value.clone(),
                    offsets: offsets(capacity),
                    validity: NullBufferBuilder::new(capacity),
                    keys: Box::new(ColumnBuilder::new(key, key_value[0].data_type(), capacity)?),
                    values: Box::new(ColumnBuilder::new(value, key_value[1].data_type(), capacity)?),
                }
            }
            (Ty::Struct { names, types }, DataType::Struct(fields))
                if names.len() == fields.len() && names.iter().zip(fields.iter()).all(|(n, f)| n == f.name()) =>
            {
                B::Struct {
                    fields: fields.clone(),
                    validity: NullBufferBuilder::new(capacity),
                    children: types
                        .iter()
                        .zip(fields.iter())
                        .map(|(ty, field)| ColumnBuilder::new(ty, field.data_type(), capacity))
                        .collect::<anyhow::Result<_>>()?,
                }
            }
            (ty, data_type) => bail!("a {ty} value cannot be written as Arrow {data_type}"),
        })
    }

    /// Appends one converted value; the cell comes from converting to the
    /// `Ty` this builder was made for.
    pub(crate) fn append(&mut self, cell: Cell) {
        use ColumnBuilder as B;
        match (self, cell) {
            (b, Cell::Null) => b.append_null(),
            (B::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (B::Int32(b), Cell::I32(v)) => b.append_value(v),
            (B::Date(b), Cell::I32(v)) => b.append_value(v),
            (B::Int64(b), Cell::I64(v)) => b.append_value(v),
            (B::Time(b), Cell::I64(v)) => b.append_value(v),
            (B::Timestamp(b), Cell::I64(v)) => b.append_value(v),
            (B::Float32(b), Cell::F32(v)) => b.append_value(v),
            (B::Float64(b), Cell::F64(v)) => b.append_value(v),
            (B::Decimal(b), Cell::I128(v)) => b.append_value(v),
            (B::Utf8(b), Cell::Str(v)) => b.append_value(v),
            (B::Binary(b), Cell::Bytes(v)) => b.append_value(v),
            (B::Uuid(b), Cell::Uuid(v)) => b.append_value(v).expect("a uuid is 16 bytes"),
            (B::List { offsets, validity, values, .. }, Cell::List(items)) => {
                let len = items.len();
                for item in items {
                    values.append(item);
                }
                push_offset(offsets, len);
                validity.append_non_null();
            }
            (B::Map { offsets, validity, keys, values, .. }, Cell::Map(entries)) => {
                let len = entries.len();
                for (key, value) in entries {
                    keys.append(key);
                    values.append(value);
                }
                push_offset(offsets, len);
                validity.append_non_null();
            }
            (B::Struct { validity, children, .. }, Cell::Struct(cells)) => {
                for (child, cell) in children.iter_mut().zip(cells) {
                    child.append(cell);
                }
                validity.append_non_null();
            }
            (_, cell) => unreachable!("a cell converted for another type: {cell:?}"),
        }
    }

    fn append_null(&mut self) {
        use ColumnBuilder as B;
        match self {
            B::Boolean(b) => b.append_null(),
            B::Int32(b) => b.append_null(),
            B::Int64(b) => b.append_null(),
            B::Float32(b) => b.append_null(),
            B::Float64(b) => b.append_null(),
            B::Decimal(b) => b.append_null(),
            B::Utf8(b) => b.append_null(),
            B::Uuid(b) => b.append_null(),
            B::Binary(b) => b.append_null(),
            B::Date(b) => b.append_null(),
            B::Time(b) => b.append_null(),
            B::Timestamp(b) => b.append_null(),
            B::List { offsets, validity, .. } | B::Map { offsets, validity, .. } => {
                push_offset(offsets, 0);
                validity.append_null();
            }
            B::Struct { validity, children, .. } => {
                for child in children {
                    child.append_null();
                }
                validity.append_null();
            }
        }
    }

    /// The array of everything appended since the last finish; the builder
    /// starts empty again.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        use ColumnBuilder as B;
        match self {
            B::Boolean(b) => Arc::new(b.finish()),
            B::Int32(b) => Arc::new(b.finish()),
            B::Int64(b) => Arc::new(b.finish()),
            B::Float32(b) => Arc::new(b.finish()),
            B::Float64(b) => Arc::new(b.finish()),
            B::Decimal(b) => Arc::new(b.finish()),
            B::Utf8(b) => Arc::new(b.finish()),
            B::Uuid(b) => Arc::new(b.finish()),
            B::Binary(b) => Arc::new(b.finish()),
            B::Date(b) => Arc::new(b.finish()),
            B::Time(b) => Arc::new(b.finish()),
            B::Timestamp(b) => Arc::new(b.finish()),
            B::List { field, offsets, validity, values } => {
                Arc::new(ListArray::new(field.clone(), take_offsets(offsets), values.finish(), validity.finish()))
            }
            B::Map { entries, key_value, offsets, validity, keys, values } => {
                let pairs = StructArray::new(key_value.clone(), vec![keys.finish(), values.finish()], None);
                Arc::new(MapArray::new(entries.clone(), take_offsets(offsets), pairs, validity.finish(), false))
            }
            B::Struct { fields, validity, children } => Arc::new(StructArray::new(
                fields.clone(),
                children.iter_mut().map(ColumnBuilder::finish).collect(),
                validity.finish(),
            )),
        }
    }
}

fn offsets(capacity: usize) -> Vec<i32> {
    let mut offsets = Vec::with_capacity(capacity + 1);
    offsets.push(0);
    offsets
}

fn push_offset(offsets: &mut Vec<i32>, len: usize) {
    let last = *offsets.last().expect("offsets start with 0");
    let next = i32::try_from(len).ok().and_then(|len| last.checked_add(len));
    offsets.push(next.expect("a batch holds fewer than 2^31 list or map entries per column"));
}

fn take_offsets(offsets: &mut Vec<i32>) -> OffsetBuffer<i32> {
    let capacity = offsets.capacity();
    let done = std::mem::replace(offsets, self::offsets(capacity.saturating_sub(1)));
    OffsetBuffer::new(ScalarBuffer::from(done))
}
