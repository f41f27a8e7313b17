//! Functions whose output size is an argument or a multiple of their input
//! (`repeat`, `lpad`, `rpad`, `replace`, `array_repeat`) build that output
//! in one allocation, which the memory pool never sees: `repeat('x', 1e9)`
//! takes a gigabyte before any limit is checked. Each is registered here
//! wrapped in a check of the most one call could make (the sum over its
//! batch: the output is allocated for all rows at once), refused (as
//! running out of memory) past the query's budget. A call on constants
//! alone (the planner folds those) may make a 1,024th of the budget, since
//! a projection copies a constant into every row of a batch of 1,024, which
//! the pool does not see either.
//!
//! Not covered: `regexp_replace` (how often a pattern matches is not known
//! before it runs, and a bound from the text's length alone would refuse
//! ordinary calls on long text), and kernels that run long in one call: the
//! query's answer comes at its timeout, but the kernel holds its thread (and
//! the tenant's slot) until it returns.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, kernels::length::length};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The rows of a batch (`execution.batch_size` of the query sessions).
pub const BATCH_ROWS: usize = 1024;

/// Registers the size-checked functions in `ctx` in place of DataFusion's
/// own, refusing any call that could make more than `max_bytes`.
pub fn register(ctx: &SessionContext, max_bytes: usize) {
    use datafusion::functions::{string, unicode};
    use datafusion::functions_nested::repeat::array_repeat_udf;
    let sized = [
        (string::repeat(), Output::Repeat),
        (unicode::lpad(), Output::Pad),
        (unicode::rpad(), Output::Pad),
        (string::replace(), Output::Replace),
        (array_repeat_udf(), Output::ArrayRepeat),
    ];
    for (inner, output) in sized {
        ctx.register_udf(ScalarUDF::new_from_impl(SizeChecked { inner, output, max_bytes }));
    }
}

/// How a function's output size follows from its arguments.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Output {
    /// `repeat(text, n)`: n times the text's bytes.
    Repeat,
    /// `lpad(text, n [, fill])`: n characters, at most 4 bytes each.
    Pad,
    /// `replace(text, from, to)`: the text, plus `to` for every place `from`
    /// can start (every character boundary when it is empty).
    Replace,
    /// `array_repeat(element, n)`: n times the element's bytes.
    ArrayRepeat,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SizeChecked {
    inner: Arc<ScalarUDF>,
    output: Output,
    max_bytes: usize,
}

impl SizeChecked {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let args = &args.args;
        // Each argument that matters, as one 64-bit integer per row.
        let inputs = match self.output {
            Output::Repeat => vec![byte_lengths(&args[0])?, ints(&args[1])?],
            Output::Pad => vec![ints(&args[1])?],
            Output::Replace => vec![byte_lengths(&args[0])?, byte_lengths(&args[1])?, byte_lengths(&args[2])?],
            Output::ArrayRepeat => vec![value_sizes(&args[0])?, ints(&args[1])?],
        };
        let size = |i: usize| {
            let at = |a: usize| inputs[a].at(i);
            match self.output {
                Output::Repeat | Output::ArrayRepeat => at(0).saturating_mul(at(1)),
                Output::Pad => at(0).saturating_mul(4),
                Output::Replace => {
                    // Where `from` could start, and what each replacement adds.
                    let (text, from, to) = (at(0), at(1), at(2));
                    let (places, growth) =
                        if from == 0 { (text.saturating_add(1), to) } else { (text / from, (to - from).max(0)) };
                    text.saturating_add(places.saturating_mul(growth))
                }
            }
        };
        let (total, limit, what) = match inputs.iter().find_map(Ints::rows) {
            // Every argument a constant: one value, made once, but a
            // projection may copy it into every row of a batch.
            None => (size(0), self.max_bytes / BATCH_ROWS, "as a constant"),
            Some(n) => ((0..n).fold(0i64, |sum, i| sum.saturating_add(size(i))), self.max_bytes, "for a batch"),
        };
        match total {
            bytes if bytes > limit as i64 => Err(DataFusionError::ResourcesExhausted(format!(
                "{} would make {bytes} bytes {what}, more than the {} KiB it may (the query may use {} MiB)",
                self.inner.name(),
                limit >> 10,
                self.max_bytes >> 20
            ))),
            _ => Ok(()),
        }
    }
}

impl ScalarUDFImpl for SizeChecked {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let wanted = if self.output == Output::Replace { 3 } else { 2 };
        if args.args.len() >= wanted {
            self.check(&args)?;
        }
        self.inner.invoke_with_args(args)
    }
}

/// One argument as 64-bit integers: one value for every row, or one each
/// (a null counts as 0: the function makes nothing of it).
enum Ints {
    Scalar(i64),
    Array(Int64Array),
}

impl Ints {
    /// The number of rows of the batch, if this is not a constant.
    fn rows(&self) -> Option<usize> {
        match self {
            Ints::Scalar(_) => None,
            Ints::Array(a) => Some(a.len()),
        }
    }

    fn at(&self, row: usize) -> i64 {
        match self {
            Ints::Scalar(v) => *v,
            Ints::Array(a) => if a.is_null(row) { 0 } else { a.value(row) }.max(0),
        }
    }
}

fn ints(value: &ColumnarValue) -> Result<Ints> {
    Ok(match value {
        ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(v) => Ints::Scalar(v.unwrap_or(0).max(0)),
            _ => Ints::Scalar(0),
        },
        ColumnarValue::Array(a) => Ints::Array(cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone()),
    })
}

fn byte_lengths(value: &ColumnarValue) -> Result<Ints> {
    Ok(match value {
        ColumnarValue::Scalar(s) => Ints::Scalar(match s {
            ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t)) | ScalarValue::Utf8View(Some(t)) => {
                t.len() as i64
            }
            _ => 0,
        }),
        ColumnarValue::Array(a) => {
            Ints::Array(cast(&length(a.as_ref())?, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
    })
}

/// What one copy of each value costs `array_repeat`: the value's slice of
/// the buffers (a list's own elements, not its whole child array), plus the
/// 8-byte take index and offset every copy needs, and 8 bytes per element
/// of a list (the inner take indices). A null or a bit still costs those.
fn value_sizes(value: &ColumnarValue) -> Result<Ints> {
    let array = match value {
        ColumnarValue::Scalar(s) => s.to_array()?,
        ColumnarValue::Array(a) => a.clone(),
    };
    let size = |i: usize| -> Result<i64> {
        let (own, elements) = match array.data_type() {
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                (list.value(i).to_data().get_slice_memory_size()?, list.value_length(i).max(0) as usize)
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                (list.value(i).to_data().get_slice_memory_size()?, list.value_length(i).max(0) as usize)
            }
            _ => (array.to_data().slice(i, 1).get_slice_memory_size()?, 0),
        };
        Ok((own + 16 + 8 * elements) as i64)
    };
    Ok(match value {
        ColumnarValue::Scalar(_) => Ints::Scalar(size(0)?),
        ColumnarValue::Array(_) => Ints::Array((0..array.len()).map(size).collect::<Result<Int64Array>>()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<Vec<String>> {
        let ctx = SessionContext::new();
        // 1,000 bytes for a constant call, 1,024 times that for a batch.
        register(&ctx, 1000 * BATCH_ROWS);
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for batch in batches {
            let column = cast(batch.column(0), &DataType::Utf8)?;
            out.extend((0..column.len()).map(|i| column.as_string::<i32>().value(i).to_string()));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn calls_within_the_budget_answer_as_before() {
        assert_eq!(run("SELECT repeat('ab', 3)").await.unwrap(), ["ababab"]);
        assert_eq!(run("SELECT lpad('7', 3, '0')").await.unwrap(), ["007"]);
        assert_eq!(run("SELECT rpad('7', 3, '-')").await.unwrap(), ["7--"]);
        let rows = run("SELECT repeat(s, n) FROM (VALUES ('x', 2), ('yz', -1), (NULL, 5)) t(s, n)").await.unwrap();
        assert_eq!(rows, ["xx", "", ""]);
        assert_eq!(run("SELECT replace('a-b-c', '-', '+')").await.unwrap(), ["a+b+c"]);
        assert_eq!(run("SELECT replace('ab', '', '.')").await.unwrap(), [".a.b."]);
        assert_eq!(run("SELECT array_length(array_repeat(1, 10))").await.unwrap(), ["10"]);
        assert_eq!(run("SELECT array_length(array_repeat(make_array(1, 2, 3), 10))").await.unwrap(), ["10"]);
    }

    #[tokio::test]
    async fn a_value_past_the_budget_is_refused_before_it_is_made() {
        for (sql, bytes) in [
            ("SELECT repeat('x', 1000000000)", 1_000_000_000),
            ("SELECT lpad('x', 251)", 1004),
            ("SELECT rpad('x', 251, 'é')", 1004),
            // The rows of a batch together: 10 + 1,200,000.
            ("SELECT repeat(s, n) FROM (VALUES ('x', 10), ('abcd', 300000)) t(s, n)", 1_200_010),
            // Each row within the budget, the batch not: 3 × 400,000.
            ("SELECT repeat(s, 400000) FROM (VALUES ('a'), ('b'), ('c')) t(s)", 1_200_000),
            // Each of the 80 bytes could start a `-`, made 30 bytes longer: 80 + 80 × 30.
            ("SELECT replace(repeat('a-', 40), '-', repeat('+', 31))", 2480),
            // An empty `from`: 11 places, 100 bytes each, plus the 10.
            ("SELECT replace('abcdefghij', '', repeat('.', 100))", 1110),
            // 200 copies of an 8-byte integer, 16 bytes of indexes each.
            ("SELECT array_repeat(CAST(1 AS BIGINT), 200)", 4800),
            // A null costs its indexes too.
            ("SELECT array_repeat(NULL, 100)", 1600),
            // A bit, for each of 100,000 copies: 1 + 16 bytes.
            ("SELECT array_repeat(v, 100000) FROM (VALUES (true)) t(v)", 1_700_000),
        ] {
            let err = run(sql).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)), "{sql}: {text}");
            assert!(text.contains(&format!("would make {bytes} bytes ")), "{sql}: {text}");
        }
    }
}
