//! The schema suggestion against a corpus of sampled messages
//! (`tests/suggest_corpus/*.json`): the exact columns for each case in both
//! nested modes, and the property that makes a suggestion usable: it passes
//! the API's mapping validation, and the real decoder takes every sampled
//! object with it but the misfits the suggestion counts, which are exactly
//! the ones it sends to the dead-letter table.
//!
//! A corpus case holds `messages` (JSON values, kept verbatim so key order
//! counts), optional `texts` and `bytes_hex` (values that are not JSON, given
//! first), and the expected suggestion as `expected` (both modes) or
//! `flatten` and `struct`.

use std::path::PathBuf;
use std::sync::Arc;

use icehouse_api::pipelines::{ColumnMapping, CompiledMapping, Mapping, MessageFormat};
use icehouse_api::sample::{NestedMode, SuggestedColumn};
use icehouse_workers::formats::RowDecoder;
use icehouse_workers::mapping::suggest::suggest;
use icehouse_workers::mapping::{table_schema, KafkaMessage};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    messages: Vec<Box<RawValue>>,
    #[serde(default)]
    texts: Vec<String>,
    #[serde(default)]
    bytes_hex: Vec<String>,
    #[serde(default)]
    expected: Option<Vec<SuggestedColumn>>,
    #[serde(default)]
    flatten: Option<Vec<SuggestedColumn>>,
    #[serde(default, rename = "struct")]
    structure: Option<Vec<SuggestedColumn>>,
}

impl Case {
    /// Every value the case samples, in order.
    fn values(&self) -> Vec<Vec<u8>> {
        let texts = self.texts.iter().map(|t| t.as_bytes().to_vec());
        let bytes = self
            .bytes_hex
            .iter()
            .map(|h| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect());
        texts.chain(bytes).chain(self.messages.iter().map(|m| m.get().as_bytes().to_vec())).collect()
    }

    /// The sampled values that are JSON objects: the ones a suggestion must decode.
    fn objects(&self) -> Vec<&str> {
        self.messages.iter().map(|m| m.get()).filter(|m| m.starts_with('{')).collect()
    }

    fn expected(&self, mode: NestedMode) -> &[SuggestedColumn] {
        let per_mode = match mode {
            NestedMode::Flatten => &self.flatten,
            NestedMode::Struct => &self.structure,
        };
        self.expected.as_ref().or(per_mode.as_ref()).expect("a case gives `expected` or `flatten` and `struct`")
    }
}

fn corpus() -> Vec<(String, Case)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/suggest_corpus");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("the corpus directory").map(|entry| entry.unwrap().path()).collect();
    files.sort();
    let cases: Vec<(String, Case)> = files
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.file_stem().unwrap().to_string_lossy().into_owned(), case)
        })
        .collect();
    assert!(cases.len() >= 10, "the corpus has {} cases", cases.len());
    cases
}

const MODES: [NestedMode; 2] = [NestedMode::Flatten, NestedMode::Struct];

fn suggest_values(values: &[Vec<u8>], mode: NestedMode) -> Vec<SuggestedColumn> {
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    suggest(&values, mode)
}

#[test]
fn corpus_cases_get_exactly_the_expected_columns() {
    let mut failures = Vec::new();
    for (name, case) in corpus() {
        for mode in MODES {
            let got = suggest_values(&case.values(), mode);
            if got != case.expected(mode) {
                let got: Vec<String> = got.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
                failures.push(format!("{name} ({mode:?}) suggested:\n  {}", got.join("\n  ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Builds the decoder of `columns` the way the runtime does, after the API's validation.
fn decoder(columns: &[SuggestedColumn]) -> Result<RowDecoder, String> {
    let mapping = Mapping { columns: columns.iter().map(|c| c.column.clone()).collect() };
    let mapping = CompiledMapping::compile(&mapping).map_err(|errors| format!("invalid mapping: {errors}"))?;
    let schema = table_schema(&mapping).map_err(|e| e.to_string())?;
    let schema = iceberg::arrow::schema_to_arrow_schema(&schema).map_err(|e| e.to_string())?;
    RowDecoder::new(MessageFormat::Json, &mapping, Arc::new(schema), usize::MAX).map_err(|e| e.to_string())
}

/// The objects the real decoder of `columns` rejects, by index; every other one is a row.
fn rejected(objects: &[&str], columns: &[SuggestedColumn]) -> Result<Vec<usize>, String> {
    let mut decoder = decoder(columns)?;
    let mut rejected = Vec::new();
    for (offset, value) in objects.iter().enumerate() {
        let msg = KafkaMessage { offset: offset as i64, value: Some(value.as_bytes().to_vec()), ..Default::default() };
        if decoder.push(&msg).is_err() {
            rejected.push(offset);
        }
    }
    let batch = decoder.finish();
    if batch.num_rows() != objects.len() - rejected.len() || batch.num_columns() != columns.len() {
        return Err(format!("{} rows of {} columns", batch.num_rows(), batch.num_columns()));
    }
    Ok(rejected)
}

/// With the suggestion made from them, every object of `objects` becomes a
/// row but the misfits: each column counts the objects a decoder of that
/// column alone rejects, and the decoder of the whole suggestion rejects
/// exactly the objects some column counts.
fn decodes_its_samples(objects: &[&str], columns: &[SuggestedColumn]) -> Result<(), String> {
    let mut misfits = std::collections::BTreeSet::new();
    for column in columns {
        let alone = rejected(objects, std::slice::from_ref(column))?;
        let name = &column.column.name;
        if alone.len() != column.misfits as usize {
            return Err(format!("column `{name}` counts {} misfits, its decoder rejects {alone:?}", column.misfits));
        }
        if column.misfit_example.is_some() != (column.misfits > 0) {
            return Err(format!(
                "column `{name}`: misfit example {:?} for {} misfits",
                column.misfit_example,
                alone.len()
            ));
        }
        misfits.extend(alone);
    }
    let all = rejected(objects, columns)?;
    if !all.iter().eq(misfits.iter()) {
        return Err(format!("the decoder rejects {all:?}, the columns count {misfits:?}"));
    }
    Ok(())
}

#[test]
fn corpus_suggestions_validate_and_decode_every_sampled_object() {
    let mut failures = Vec::new();
    for (name, case) in corpus() {
        for mode in MODES {
            let columns = suggest_values(&case.values(), mode);
            if let Err(e) = decodes_its_samples(&case.objects(), &columns) {
                failures.push(format!("{name} ({mode:?}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The messages with their top-level keys in another order (nested values as they are).
fn reordered(messages: &[&str], order: impl Fn(&mut Vec<(String, Box<RawValue>)>)) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|m| {
            let map: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(m).unwrap();
            let mut members: Vec<(String, Box<RawValue>)> = map.into_iter().collect();
            order(&mut members);
            let body: Vec<String> =
                members.iter().map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v.get())).collect();
            format!("{{{}}}", body.join(",")).into_bytes()
        })
        .collect()
}

#[test]
fn the_same_samples_give_the_same_suggestion_whatever_the_key_order_after_the_first() {
    for (name, case) in corpus() {
        let objects = case.objects();
        let Some((first, rest)) = objects.split_first() else { continue };
        for mode in MODES {
            let want = suggest_values(&case.values(), mode);
            assert_eq!(suggest_values(&case.values(), mode), want, "{name} ({mode:?}) twice");
            for (how, order) in [
                ("sorted", (|_: &mut Vec<_>| {}) as fn(&mut Vec<(String, Box<RawValue>)>)),
                ("reversed", |m: &mut Vec<_>| m.reverse()),
                ("rotated", |m: &mut Vec<_>| {
                    let n = m.len() / 2;
                    m.rotate_left(n)
                }),
            ] {
                let mut values = vec![first.as_bytes().to_vec()];
                values.extend(reordered(rest, order));
                assert_eq!(suggest_values(&values, mode), want, "{name} ({mode:?}), later samples' keys {how}");
            }
        }
    }
    // The first sample does fix the order: with its top-level keys sorted, the columns are.
    let (_, sales) = corpus().into_iter().find(|(name, _)| name == "store_sales").unwrap();
    let sorted = reordered(&sales.objects(), |_| {});
    let names: Vec<String> = suggest_values(&sorted, NestedMode::Flatten).into_iter().map(|c| c.column.name).collect();
    let want = [
        "city",
        "country",
        "currency",
        "customer_id",
        "customer_tier",
        "customer_since",
        "product",
        "quantity",
        "region",
        "sold_at",
        "store",
        "unit_price",
    ];
    assert_eq!(names, want);
}

#[test]
fn nothing_to_suggest_without_an_object() {
    assert!(suggest(&[], NestedMode::Flatten).is_empty());
    let values: [&[u8]; 4] = [b"[1]", b"null", b"{", b"\xff"];
    assert!(suggest(&values, NestedMode::Struct).is_empty());
    // Objects without a field a path can name.
    let values: [&[u8]; 2] = [br#"{"a.b":1,"":2,"x]":3}"#, b"{}"];
    assert!(suggest(&values, NestedMode::Flatten).is_empty());
}

fn column(suggested: &SuggestedColumn) -> (&str, &str, &str, bool) {
    let ColumnMapping { name, column_type, path, nullable, .. } = &suggested.column;
    (name.as_str(), column_type.as_str(), path.as_str(), *nullable)
}

#[test]
fn at_most_1000_columns() {
    let body: Vec<String> = (0..1100).map(|i| format!("\"k{i}\":{i}")).collect();
    let message = format!("{{{}}}", body.join(","));
    let columns = suggest(&[message.as_bytes()], NestedMode::Flatten);
    assert_eq!(columns.len(), 1000);
    assert_eq!(column(&columns[999]), ("k999", "int", "$.k999", false));
    decodes_its_samples(&[&message], &columns).unwrap();
}

#[test]
fn a_struct_type_too_long_for_a_mapping_is_a_string_column() {
    // 600 fields of ~12 characters each: over the 4096 characters a type may have.
    let fields: Vec<String> = (0..600).map(|i| format!("\"field_{i:03}\":{i}")).collect();
    let message = format!(r#"{{"id":1,"wide":{{{}}},"items":[{{{}}}]}}"#, fields.join(","), fields.join(","));
    let columns = suggest(&[message.as_bytes()], NestedMode::Struct);
    let got: Vec<_> = columns.iter().map(column).collect();
    assert_eq!(
        got,
        [("id", "int", "$.id", false), ("wide", "string", "$.wide", false), ("items", "string", "$.items", false)]
    );
    decodes_its_samples(&[&message], &columns).unwrap();
    // Flattened, the same object is 600 columns.
    let columns = suggest(&[message.as_bytes()], NestedMode::Flatten);
    assert_eq!(columns.len(), 602);
    assert_eq!(column(&columns[600]), ("wide_field_599", "int", "$.wide.field_599", false));
    decodes_its_samples(&[&message], &columns).unwrap();
}

#[test]
fn long_names_and_paths_stay_within_the_limits() {
    let key = "k".repeat(200);
    let deep_key = "d".repeat(300);
    let message = format!(
        r#"{{"{key}":1,"{key}K":2,"o":{{"{deep_key}":{{"{deep_key}":{{"{deep_key}":{{"{deep_key}":1}}}}}}}}}}"#
    );
    let columns = suggest(&[message.as_bytes()], NestedMode::Flatten);
    let names: Vec<&str> = columns.iter().map(|c| c.column.name.as_str()).collect();
    // `o.ddd…` nests a path longer than 1024 characters: its deepest field cannot be named.
    let cut = "k".repeat(128);
    let cut_2 = format!("{}_2", "k".repeat(126));
    assert_eq!(names, [cut.as_str(), cut_2.as_str()]);
    decodes_its_samples(&[&message], &columns).unwrap();
}
