//! The paths a mapping reads values from: `$`, then `.field` or `[index]`.
//!
//! The syntax is JSONPath's, but a path is not tied to JSON: it names a
//! field of the message's top-level record and then fields and list
//! elements below it, which a decoder of any format can follow.

/// A path into a message: `$`, then `.field` or `[index]` segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(pub Vec<PathSegment>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("`{text}` is not a path like $.a.b or $.items[0]: {why}");
        if text.len() > 1024 {
            return Err("is too long".into());
        }
        let rest = text.strip_prefix('$').ok_or_else(|| bad("must start with $"))?;
        let mut segments = Vec::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            match c {
                '.' => {
                    let mut name = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        if c == ']' {
                            return Err(bad("unmatched ]"));
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.is_empty() {
                        return Err(bad("empty field name"));
                    }
                    segments.push(PathSegment::Field(name));
                }
                '[' => {
                    let mut digits = String::new();
                    loop {
                        match chars.next() {
                            Some((_, ']')) => break,
                            Some((_, d)) if d.is_ascii_digit() => digits.push(d),
                            _ => return Err(bad("an index is [digits]")),
                        }
                    }
                    let index = digits.parse().map_err(|_| bad("an index is [digits]"))?;
                    segments.push(PathSegment::Index(index));
                }
                _ => return Err(bad("expected . or [")),
            }
        }
        // Messages are JSON objects, so a path starts with a field name.
        if !matches!(segments.first(), Some(PathSegment::Field(_))) {
            return Err(bad("must start with a field, like $.name"));
        }
        Ok(JsonPath(segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            JsonPath::parse("$.items[2].sku").unwrap().0,
            vec![PathSegment::Field("items".into()), PathSegment::Index(2), PathSegment::Field("sku".into())]
        );
        for bad in ["", "$", "a.b", "$.", "$..a", "$[x]", "$.a[", "$.a]", "$[0]", "$[0].a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
