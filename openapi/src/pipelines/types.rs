//! The column types a mapping may name, as written in it, and their parser.

/// An Iceberg type as written in a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcebergType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u8, scale: u8 },
    String,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Binary,
    List(Box<IcebergType>),
    Map(Box<IcebergType>, Box<IcebergType>),
    Struct(Vec<(String, IcebergType)>),
}

impl IcebergType {
    pub fn parse(text: &str) -> Result<IcebergType, String> {
        if text.len() > 4096 {
            return Err("is too long".into());
        }
        let mut p = TypeParser { s: text.as_bytes(), pos: 0 };
        let ty = p.parse_type().map_err(|e| format!("`{text}` is not an Iceberg type: {e}"))?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(format!("`{text}` is not an Iceberg type: unexpected text at {}", p.pos));
        }
        Ok(ty)
    }

    pub fn is_primitive(&self) -> bool {
        !matches!(self, IcebergType::List(_) | IcebergType::Map(..) | IcebergType::Struct(_))
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self, IcebergType::Date | IcebergType::Timestamp | IcebergType::Timestamptz)
    }
}

impl std::fmt::Display for IcebergType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IcebergType::Boolean => f.write_str("boolean"),
            IcebergType::Int => f.write_str("int"),
            IcebergType::Long => f.write_str("long"),
            IcebergType::Float => f.write_str("float"),
            IcebergType::Double => f.write_str("double"),
            IcebergType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            IcebergType::String => f.write_str("string"),
            IcebergType::Uuid => f.write_str("uuid"),
            IcebergType::Date => f.write_str("date"),
            IcebergType::Time => f.write_str("time"),
            IcebergType::Timestamp => f.write_str("timestamp"),
            IcebergType::Timestamptz => f.write_str("timestamptz"),
            IcebergType::Binary => f.write_str("binary"),
            IcebergType::List(e) => write!(f, "list<{e}>"),
            IcebergType::Map(k, v) => write!(f, "map<{k},{v}>"),
            IcebergType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}:{ty}")?;
                }
                f.write_str(">")
            }
        }
    }
}

struct TypeParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_') {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", c as char, self.pos))
        }
    }

    fn peek(&mut self, c: u8) -> bool {
        self.skip_ws();
        self.s.get(self.pos) == Some(&c)
    }

    fn number(&mut self) -> Result<u8, String> {
        let w = self.word().to_string();
        w.parse::<u8>().map_err(|_| format!("expected a number, found `{w}`"))
    }

    fn parse_type(&mut self) -> Result<IcebergType, String> {
        let word = self.word().to_ascii_lowercase();
        Ok(match word.as_str() {
            "boolean" => IcebergType::Boolean,
            "int" | "integer" => IcebergType::Int,
            "long" | "bigint" => IcebergType::Long,
            "float" => IcebergType::Float,
            "double" => IcebergType::Double,
            "string" => IcebergType::String,
            "uuid" => IcebergType::Uuid,
            "date" => IcebergType::Date,
            "time" => IcebergType::Time,
            "timestamp" => IcebergType::Timestamp,
            "timestamptz" => IcebergType::Timestamptz,
            "binary" => IcebergType::Binary,
            "decimal" => {
                self.expect(b'(')?;
                let precision = self.number()?;
                self.expect(b',')?;
                let scale = self.number()?;
                self.expect(b')')?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err("decimal needs 1 <= precision <= 38 and scale <= precision".into());
                }
                IcebergType::Decimal { precision, scale }
            }
            "list" => {
                self.expect(b'<')?;
                let element = self.parse_type()?;
                self.expect(b'>')?;
                IcebergType::List(Box::new(element))
            }
            "map" => {
                self.expect(b'<')?;
                let key = self.parse_type()?;
                if !key.is_primitive() {
                    return Err("map keys must be of a primitive type".into());
                }
                self.expect(b',')?;
                let value = self.parse_type()?;
                self.expect(b'>')?;
                IcebergType::Map(Box::new(key), Box::new(value))
            }
            "struct" => {
                self.expect(b'<')?;
                let mut fields: Vec<(String, IcebergType)> = Vec::new();
                loop {
                    let name = self.word().to_string();
                    if !crate::validate::is_identifier(&name) {
                        return Err(format!("`{name}` is not a valid struct field name"));
                    }
                    if fields.iter().any(|(n, _)| *n == name) {
                        return Err(format!("duplicate struct field `{name}`"));
                    }
                    self.expect(b':')?;
                    let ty = self.parse_type()?;
                    fields.push((name, ty));
                    if self.peek(b',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(b'>')?;
                IcebergType::Struct(fields)
            }
            "" => return Err(format!("expected a type at {}", self.pos)),
            other => return Err(format!("unknown type `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip() {
        for t in [
            "boolean",
            "int",
            "long",
            "float",
            "double",
            "decimal(10,2)",
            "string",
            "uuid",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "binary",
            "list<string>",
            "map<string,long>",
            "struct<id:long,tags:list<string>,addr:struct<city:string>>",
        ] {
            assert_eq!(IcebergType::parse(t).unwrap().to_string(), t);
        }
        assert_eq!(IcebergType::parse(" decimal( 38 , 0 ) ").unwrap().to_string(), "decimal(38,0)");
        for bad in [
            "",
            "str",
            "decimal(0,0)",
            "decimal(39,1)",
            "decimal(5,6)",
            "list<>",
            "list<int",
            "map<list<int>,int>",
            "struct<>",
            "struct<A:int>",
            "struct<a:int,a:int>",
            "int int",
        ] {
            assert!(IcebergType::parse(bad).is_err(), "{bad}");
        }
    }
}
