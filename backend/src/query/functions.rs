//! String functions whose output size is an argument (`repeat`, `lpad`,
//! `rpad`) build that output in one allocation, which the memory pool never
//! sees: `repeat('x', 1e9)` takes a gigabyte before any limit is checked.
//! Each is registered here wrapped in a check of what one call would make
//! (the sum over its batch: the output is allocated for all rows at once),
//! refused (as running out of memory) past the query's budget. The check
//! also runs when the planner folds a constant call.
//!
//! Not covered: a large constant (folded, or typed) that a projection
//! copies into every row of a batch, and other functions that multiply
//! their input (`replace`, `array_repeat`).

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

/// Registers the size-checked `repeat`, `lpad` and `rpad` in `ctx`,
/// refusing any value over `max_bytes`.
pub fn register(ctx: &SessionContext, max_bytes: usize) {
    use datafusion::functions::{string, unicode};
    let sized = [(string::repeat(), Output::Repeat), (unicode::lpad(), Output::Pad), (unicode::rpad(), Output::Pad)];
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
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SizeChecked {
    inner: Arc<ScalarUDF>,
    output: Output,
    max_bytes: usize,
}

impl SizeChecked {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let count = ints(&args.args[1])?;
        let size = |i: usize, text: &Ints| match self.output {
            Output::Repeat => text.at(i).saturating_mul(count.at(i)),
            Output::Pad => count.at(i).saturating_mul(4),
        };
        let text = match self.output {
            Output::Repeat => byte_lengths(&args.args[0])?,
            Output::Pad => Ints::Scalar(0),
        };
        let total = match rows(&[&text, &count]) {
            // Every argument a constant: one value, made once.
            None => size(0, &text),
            Some(n) => (0..n).fold(0i64, |sum, i| sum.saturating_add(size(i, &text))),
        };
        match total {
            bytes if bytes > self.max_bytes as i64 => Err(DataFusionError::ResourcesExhausted(format!(
                "{} would make {bytes} bytes of text, more than the {} MiB a query may use",
                self.inner.name(),
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
        if args.args.len() >= 2 {
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
    fn at(&self, row: usize) -> i64 {
        match self {
            Ints::Scalar(v) => *v,
            Ints::Array(a) => if a.is_null(row) { 0 } else { a.value(row) }.max(0),
        }
    }
}

/// The number of rows of the batch, if any argument is not a constant.
fn rows(args: &[&Ints]) -> Option<usize> {
    args.iter().find_map(|a| if let Ints::Array(a) = a { Some(a.len()) } else { None })
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<Vec<String>> {
        let ctx = SessionContext::new();
        register(&ctx, 1000);
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
    }

    #[tokio::test]
    async fn a_value_past_the_budget_is_refused_before_it_is_made() {
        for (sql, bytes) in [
            ("SELECT repeat('x', 1000000000)", 1_000_000_000),
            ("SELECT lpad('x', 251)", 1004),
            ("SELECT rpad('x', 251, 'é')", 1004),
            // The rows of a batch together: 10 + 1200.
            ("SELECT repeat(s, n) FROM (VALUES ('x', 10), ('abcd', 300)) t(s, n)", 1210),
            // Each row within the budget, the batch not: 3 × 400.
            ("SELECT repeat(s, 400) FROM (VALUES ('a'), ('b'), ('c')) t(s)", 1200),
        ] {
            let err = run(sql).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)), "{sql}: {text}");
            assert!(text.contains(&format!("would make {bytes} bytes of text")), "{sql}: {text}");
        }
    }
}
