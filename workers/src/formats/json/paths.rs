//! Finding the values that a mapping's paths reach in one JSON message, as
//! raw JSON text borrowed from the message.
//!
//! All columns' paths form one tree, so every object on the way is parsed
//! once however many columns read from it, and values no path reaches are
//! only skipped over (serde_json still checks that they are well-formed).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use icehouse_api::pipelines::{JsonPath, PathSegment};

use crate::formats::exact::clip;

/// Above this many fields in one object of the tree, find them by hash.
const LINEAR_FIELDS: usize = 12;

/// The paths of all columns of a mapping, merged by common prefix.
pub(crate) struct PathTree {
    root: Node,
}

#[derive(Default)]
struct Node {
    fields: Vec<(String, Node)>,
    field_index: Option<HashMap<String, usize>>,
    indexes: Vec<(usize, Node)>,
    /// Columns whose path ends here.
    leaves: Vec<usize>,
    /// Columns whose path ends here or below.
    below: Vec<usize>,
}

impl PathTree {
    /// Column `i` reads `paths[i]`.
    pub(crate) fn new(paths: &[&JsonPath]) -> PathTree {
        let mut root = Node::default();
        for (column, path) in paths.iter().enumerate() {
            let mut node = &mut root;
            for segment in &path.0 {
                node.below.push(column);
                node = match segment {
                    PathSegment::Field(name) => match node.fields.iter().position(|(n, _)| n == name) {
                        Some(i) => &mut node.fields[i].1,
                        None => {
                            node.fields.push((name.clone(), Node::default()));
                            &mut node.fields.last_mut().expect("just pushed").1
                        }
                    },
                    PathSegment::Index(index) => match node.indexes.iter().position(|(i, _)| i == index) {
                        Some(i) => &mut node.indexes[i].1,
                        None => {
                            node.indexes.push((*index, Node::default()));
                            &mut node.indexes.last_mut().expect("just pushed").1
                        }
                    },
                };
            }
            node.below.push(column);
            node.leaves.push(column);
        }
        root.index_fields();
        PathTree { root }
    }

    /// Parses `text` (the whole message) and sets `slots[column]` to the
    /// value each column's path reaches; slots of paths that reach nothing
    /// are left alone (the caller passes them as `None`). The error is the
    /// text of an `invalid_json` rejection.
    pub(crate) fn resolve<'a>(&self, text: &'a str, slots: &mut [Option<&'a RawValue>]) -> Result<(), String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = (&mut de).deserialize_map(ObjectVisitor { node: &self.root, slots }).and_then(|()| de.end());
        parsed.map_err(|error| {
            let first = text.trim_start_matches([' ', '\t', '\n', '\r']).as_bytes().first().copied();
            let what = match first {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            let not_object = first != Some(b'{') && serde_json::from_str::<IgnoredAny>(text).is_ok();
            if not_object {
                format!("the value is {what}, not a JSON object")
            } else {
                format!("the value is not valid JSON: {error}")
            }
        })
    }
}

impl Node {
    fn index_fields(&mut self) {
        if self.fields.len() > LINEAR_FIELDS {
            self.field_index = Some(self.fields.iter().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect());
        }
        let fields = self.fields.iter_mut().map(|(_, child)| child);
        for child in fields.chain(self.indexes.iter_mut().map(|(_, child)| child)) {
            child.index_fields();
        }
    }

    fn field(&self, name: &str) -> Option<&Node> {
        match &self.field_index {
            Some(index) => index.get(name).map(|&i| &self.fields[i].1),
            // The first byte and the length rule out most names before a
            // full comparison (this runs for every key of every message).
            None => {
                let (first, len) = (name.as_bytes().first(), name.len());
                let same = |n: &str| n.len() == len && n.as_bytes().first() == first && n == name;
                self.fields.iter().find(|(n, _)| same(n)).map(|(_, node)| node)
            }
        }
    }

    fn resolve<'a>(&self, raw: &'a RawValue, slots: &mut [Option<&'a RawValue>]) -> Result<(), serde_json::Error> {
        for &column in &self.leaves {
            slots[column] = Some(raw);
        }
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'{') if !self.fields.is_empty() => {
                serde_json::Deserializer::from_str(text).deserialize_map(ObjectVisitor { node: self, slots })
            }
            Some(b'[') if !self.indexes.is_empty() => {
                serde_json::Deserializer::from_str(text).deserialize_seq(ArrayVisitor { node: self, slots })
            }
            _ => Ok(()),
        }
    }
}

struct ObjectVisitor<'n, 's, 'a> {
    node: &'n Node,
    slots: &'s mut [Option<&'a RawValue>],
}

impl<'a> Visitor<'a> for ObjectVisitor<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        let ObjectVisitor { node, slots } = self;
        while let Some(key) = map.next_key::<Key<'a>>()? {
            match node.field(&key.0) {
                Some(child) => {
                    let raw: &'a RawValue = map.next_value()?;
                    // A repeated key: the last one wins, as in serde_json's own maps.
                    for &column in &child.below {
                        slots[column] = None;
                    }
                    child.resolve(raw, slots).map_err(de::Error::custom)?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct ArrayVisitor<'n, 's, 'a> {
    node: &'n Node,
    slots: &'s mut [Option<&'a RawValue>],
}

impl<'a> Visitor<'a> for ArrayVisitor<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        let ArrayVisitor { node, slots } = self;
        for position in 0.. {
            match node.indexes.iter().find(|(i, _)| *i == position) {
                Some((_, child)) => match seq.next_element::<&'a RawValue>()? {
                    Some(raw) => child.resolve(raw, slots).map_err(de::Error::custom)?,
                    None => break,
                },
                None => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A JSON string, borrowed from the message unless it has escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// One JSON value, looked at: what a converter needs to decide.
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    /// The number's text exactly as in the message.
    Number(&'a str),
    String(Cow<'a, str>),
    Array,
    Object,
}

const VALID: &str = "serde_json checked this raw value when it was read";

impl<'a> Json<'a> {
    pub(crate) fn of(raw: &'a RawValue) -> Json<'a> {
        let text = raw.get();
        match text.as_bytes()[0] {
            b'n' => Json::Null,
            b't' => Json::Bool(true),
            b'f' => Json::Bool(false),
            // Without escapes a string's text is its value (serde_json has
            // checked the rest: no raw control characters); with them, unescape.
            b'"' if !text.contains('\\') => Json::String(Cow::Borrowed(&text[1..text.len() - 1])),
            b'"' => Json::String(serde_json::from_str::<Key<'a>>(text).expect(VALID).0),
            b'[' => Json::Array,
            b'{' => Json::Object,
            _ => Json::Number(text),
        }
    }
}

/// What was found, for an error message: `string "7x"`, `number 1.5`.
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "boolean {b}"),
            Json::Number(n) => write!(f, "number {}", clip(n)),
            Json::String(s) => write!(f, "string {:?}", clip(s)),
            Json::Array => f.write_str("an array"),
            Json::Object => f.write_str("an object"),
        }
    }
}

pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// The elements of a raw JSON array.
pub(crate) fn elements(raw: &RawValue) -> Vec<&RawValue> {
    serde_json::from_str(raw.get()).expect(VALID)
}

/// The members of a raw JSON object, in order; a repeated key keeps its last value.
pub(crate) fn members(raw: &RawValue) -> Vec<(Cow<'_, str>, &RawValue)> {
    serde_json::Deserializer::from_str(raw.get()).deserialize_map(MembersVisitor).expect(VALID)
}

struct MembersVisitor;

impl<'a> Visitor<'a> for MembersVisitor {
    type Value = Vec<(Cow<'a, str>, &'a RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(map.size_hint().unwrap_or(4));
        let mut index: Option<HashMap<Cow<'a, str>, usize>> = None;
        while let Some((Key(key), value)) = map.next_entry::<Key<'a>, &'a RawValue>()? {
            // Duplicate keys are rare; look for them linearly until the object is big.
            if index.is_none() && members.len() == LINEAR_FIELDS {
                index = Some(members.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
            }
            let existing = match &mut index {
                Some(index) => match index.get(&key) {
                    Some(&i) => Some(i),
                    None => {
                        index.insert(key.clone(), members.len());
                        None
                    }
                },
                None => members.iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(i) => members[i].1 = value,
                None => members.push((key, value)),
            }
        }
        Ok(members)
    }
}

/// The values of the named fields of a raw JSON object (absent ones `None`;
/// a repeated key keeps its last value).
pub(crate) fn fields<'a>(raw: &'a RawValue, names: &[String]) -> Vec<Option<&'a RawValue>> {
    let mut values = vec![None; names.len()];
    serde_json::Deserializer::from_str(raw.get())
        .deserialize_map(FieldsVisitor { names, values: &mut values })
        .expect(VALID);
    values
}

struct FieldsVisitor<'n, 's, 'a> {
    names: &'n [String],
    values: &'s mut [Option<&'a RawValue>],
}

impl<'a> Visitor<'a> for FieldsVisitor<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => self.values[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve<'a>(paths: &[&str], text: &'a str) -> Result<Vec<Option<&'a str>>, String> {
        let paths: Vec<JsonPath> = paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        let tree = PathTree::new(&paths.iter().collect::<Vec<_>>());
        let mut slots = vec![None; paths.len()];
        tree.resolve(text, &mut slots)?;
        Ok(slots.into_iter().map(|s| s.map(RawValue::get)).collect())
    }

    #[test]
    fn paths_reach_raw_values() {
        let text = r#"{"a":1,"b":{"c":"x","d":[10,{"e":true},30]},"z":null,"a2":[1 , 2]}"#;
        let got = resolve(&["$.a", "$.b.c", "$.b.d[1].e", "$.b.d[2]", "$.b.d[9]", "$.z", "$.a.x", "$.a2", "$.q"], text);
        assert_eq!(
            got.unwrap(),
            vec![Some("1"), Some(r#""x""#), Some("true"), Some("30"), None, Some("null"), None, Some("[1 , 2]"), None]
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value_whole() {
        let text = r#"{"b":{"c":1,"d":2},"b":{"c":3}}"#;
        assert_eq!(resolve(&["$.b.c", "$.b.d"], text).unwrap(), vec![Some("3"), None]);
    }

    #[test]
    fn many_fields_are_found_by_hash() {
        let names: Vec<String> = (0..40).map(|i| format!("$.f{i}")).collect();
        let paths: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = format!("{{{}}}", (0..40).rev().map(|i| format!("\"f{i}\":{i}")).collect::<Vec<_>>().join(","));
        let got = resolve(&paths, &text).unwrap();
        let want: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        assert_eq!(got, want.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>());
    }

    #[test]
    fn not_an_object_or_not_json() {
        assert_eq!(resolve(&["$.a"], " [1,2]").unwrap_err(), "the value is an array, not a JSON object");
        assert_eq!(resolve(&["$.a"], "42").unwrap_err(), "the value is a number, not a JSON object");
        assert_eq!(
            resolve(&["$.a"], r#"{"a":1,}"#).unwrap_err(),
            "the value is not valid JSON: trailing comma at line 1 column 8"
        );
        assert_eq!(
            resolve(&["$.a"], r#"{"a":1} x"#).unwrap_err(),
            "the value is not valid JSON: trailing characters at line 1 column 9"
        );
        // Unmapped values must be valid JSON too.
        assert_eq!(
            resolve(&["$.a"], r#"{"a":1,"b":[tru]}"#).unwrap_err(),
            "the value is not valid JSON: expected ident at line 1 column 16"
        );
    }

    #[test]
    fn members_and_fields() {
        let raw: &RawValue = serde_json::from_str(r#"{"k\u0031":1,"k2":2,"k1":3}"#).unwrap();
        let got: Vec<(String, &str)> = members(raw).into_iter().map(|(k, v)| (k.into_owned(), v.get())).collect();
        assert_eq!(got, vec![("k1".to_string(), "3"), ("k2".to_string(), "2")]);
        let got = fields(raw, &["k2".to_string(), "nope".to_string()]);
        assert_eq!(got.into_iter().map(|v| v.map(RawValue::get)).collect::<Vec<_>>(), vec![Some("2"), None]);
    }

    #[test]
    fn describe_clips() {
        let text = format!("\"{}\"", "é".repeat(50));
        let raw: &RawValue = serde_json::from_str(&text).unwrap();
        assert_eq!(Json::of(raw).to_string(), format!("string \"{}…\"", "é".repeat(40)));
    }
}
