//! A serde deserializer over a borrowed [`toml::Value`] that knows where it is.
//!
//! The library configs (`DataConfig`, `ModelSpec`, `TrainConfig`) are plain
//! serde structs. Deserializing them through this wrapper instead of toml's own
//! `Value` deserializer gives every error the dotted key path it happened at
//! (`model.blocks[1]`), and turns unknown keys and unknown enum values into
//! structured errors that carry the accepted names, so the caller can map the
//! key to a file position and suggest the closest name.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A key of a table.
    Key(String),
    /// An element of an array (0-based).
    Index(usize),
}

/// Renders a path as `a.b[2].c`.
pub fn render_path(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => {
                out.push_str(&format!("[{i}]"));
            }
        }
    }
    out
}

/// What went wrong while deserializing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeErrorKind {
    /// A table key that the target struct does not have.
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys the struct accepts.
        expected: Vec<String>,
    },
    /// A string that is not one of an enum's variants.
    UnknownVariant {
        /// The value as written.
        value: String,
        /// The accepted values.
        expected: Vec<String>,
    },
    /// Any other problem (wrong type, out of range, a custom message).
    Message(String),
}

/// A deserialization error with the key path it happened at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    /// Where in the value the error happened; the last segment is the key at fault.
    pub path: Vec<PathSegment>,
    /// What went wrong.
    pub kind: DeErrorKind,
}

impl DeError {
    fn prefixed(mut self, seg: PathSegment) -> Self {
        self.path.insert(0, seg);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = render_path(&self.path);
        if !at.is_empty() {
            write!(f, "`{at}`: ")?;
        }
        match &self.kind {
            DeErrorKind::UnknownKey { key, .. } => write!(f, "unknown key `{key}`"),
            DeErrorKind::UnknownVariant { value, expected } => {
                write!(
                    f,
                    "unknown value `{value}`, expected one of {}",
                    quoted_list(expected)
                )
            }
            DeErrorKind::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: Vec::new(),
            kind: DeErrorKind::Message(msg.to_string()),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            path: Vec::new(),
            kind: DeErrorKind::UnknownVariant {
                value: variant.to_string(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            path: vec![PathSegment::Key(field.to_string())],
            kind: DeErrorKind::UnknownKey {
                key: field.to_string(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            },
        }
    }
}

/// `` `a`, `b`, `c` ``
pub fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deserializes `T` from `value`, reporting errors with their key path.
pub fn from_value<'de, T: serde::Deserialize<'de>>(value: &'de toml::Value) -> Result<T, DeError> {
    T::deserialize(ValueDe(value))
}

/// The deserializer: a borrowed TOML value.
#[derive(Clone, Copy)]
pub struct ValueDe<'a>(pub &'a toml::Value);

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::Boolean(b) => visitor.visit_bool(*b),
            toml::Value::Integer(i) => visitor.visit_i64(*i),
            toml::Value::Float(x) => visitor.visit_f64(*x),
            toml::Value::String(s) => visitor.visit_borrowed_str(s),
            toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
            toml::Value::Array(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
            }),
            toml::Value::Table(table) => visitor.visit_map(MapDe {
                iter: table.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if let toml::Value::Table(table) = self.0 {
            // Check the keys here, before serde does, so that the error names
            // the accepted keys even for structs without `deny_unknown_fields`.
            if let Some(key) = table.keys().find(|k| !fields.contains(&k.as_str())) {
                return Err(<DeError as de::Error>::unknown_field(key, fields));
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            toml::Value::String(s) => {
                if !variants.contains(&s.as_str()) {
                    return Err(<DeError as de::Error>::unknown_variant(s, variants));
                }
                visitor.visit_enum(s.as_str().into_deserializer())
            }
            toml::Value::Table(t) if t.len() == 1 => {
                let (k, v) = t.iter().next().expect("one entry");
                if !variants.contains(&k.as_str()) {
                    return Err(<DeError as de::Error>::unknown_variant(k, variants));
                }
                visitor.visit_enum(EnumDe {
                    variant: k,
                    value: v,
                })
            }
            other => Err(DeError {
                path: Vec::new(),
                kind: DeErrorKind::Message(format!(
                    "expected one of {}, found {}",
                    quoted_list(&variants.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                    describe(other)
                )),
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// A short description of a value for error messages: `integer 3`, `string "x"`.
pub fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer {i}"),
        toml::Value::Float(x) => format!("float {x}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        toml::Value::Datetime(d) => format!("datetime {d}"),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, toml::Value>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(v) => {
                let i = self.index;
                self.index += 1;
                seed.deserialize(ValueDe(v))
                    .map(Some)
                    .map_err(|e| e.prefixed(PathSegment::Index(i)))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a> {
    iter: toml::map::Iter<'a, String, toml::Value>,
    value: Option<(&'a String, &'a toml::Value)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(k))
                    .map(Some)
                    .map_err(|e| {
                        // serde's unknown_field already names the key.
                        if matches!(e.kind, DeErrorKind::UnknownKey { .. }) {
                            e
                        } else {
                            e.prefixed(PathSegment::Key(k.clone()))
                        }
                    })
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (k, v) = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before key"))?;
        seed.deserialize(ValueDe(v))
            .map_err(|e| e.prefixed(PathSegment::Key(k.clone())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumDe<'a> {
    variant: &'a str,
    value: &'a toml::Value,
}

impl<'de> de::EnumAccess<'de> for EnumDe<'de> {
    type Error = DeError;
    type Variant = VariantDe<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::<DeError>::new(
            self.variant,
        ))?;
        Ok((
            v,
            VariantDe {
                key: self.variant,
                value: self.value,
            },
        ))
    }
}

struct VariantDe<'a> {
    key: &'a str,
    value: &'a toml::Value,
}

impl<'de> de::VariantAccess<'de> for VariantDe<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Err(<DeError as de::Error>::custom(format!(
            "`{}` takes no value",
            self.key
        )))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(ValueDe(self.value))
            .map_err(|e| e.prefixed(PathSegment::Key(self.key.to_string())))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(ValueDe(self.value), visitor)
            .map_err(|e| e.prefixed(PathSegment::Key(self.key.to_string())))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(ValueDe(self.value), "", fields, visitor)
            .map_err(|e| e.prefixed(PathSegment::Key(self.key.to_string())))
    }
}

/// The keys a serde struct accepts (its `deserialize_struct` field list),
/// e.g. to check that documentation lists every key of a config table.
pub fn struct_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Alpha,
        BetaGamma,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        n: u32,
        x: f64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        kind: Kind,
        #[serde(default)]
        list: Vec<u8>,
        #[serde(default)]
        inner: Inner,
        #[serde(default)]
        maybe: Option<String>,
    }

    fn parse(s: &str) -> toml::Value {
        toml::Value::Table(toml::from_str(s).unwrap())
    }

    #[test]
    fn struct_fields_lists_the_keys() {
        assert_eq!(struct_fields::<Inner>(), &["n", "x"]);
        assert_eq!(
            struct_fields::<Outer>(),
            &["kind", "list", "inner", "maybe"]
        );
    }

    #[test]
    fn deserializes_typed_values() {
        let v = parse("kind = 'beta_gamma'\nlist = [1, 2]\nmaybe = 'y'\n[inner]\nn = 3\nx = 2\n");
        let o: Outer = from_value(&v).unwrap();
        assert_eq!(o.kind, Kind::BetaGamma);
        assert_eq!(o.list, vec![1, 2]);
        assert_eq!(o.inner, Inner { n: 3, x: 2.0 });
        assert_eq!(o.maybe.as_deref(), Some("y"));
    }

    #[test]
    fn unknown_key_has_path_and_expected() {
        let v = parse("kind = 'alpha'\n[inner]\nnn = 3\n");
        let e = from_value::<Outer>(&v).unwrap_err();
        assert_eq!(render_path(&e.path), "inner.nn");
        match e.kind {
            DeErrorKind::UnknownKey { key, expected } => {
                assert_eq!(key, "nn");
                assert_eq!(expected, vec!["n", "x"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_variant_and_wrong_types_have_paths() {
        let e = from_value::<Outer>(&parse("kind = 'alpah'")).unwrap_err();
        assert_eq!(render_path(&e.path), "kind");
        assert!(
            matches!(e.kind, DeErrorKind::UnknownVariant { ref value, .. } if value == "alpah")
        );

        let e = from_value::<Outer>(&parse("kind = 'alpha'\nlist = [1, 300]")).unwrap_err();
        assert_eq!(render_path(&e.path), "list[1]");
        assert!(e.to_string().contains("300"), "{e}");

        let e = from_value::<Outer>(&parse("kind = 'alpha'\n[inner]\nn = 'three'")).unwrap_err();
        assert_eq!(render_path(&e.path), "inner.n");
        assert!(
            e.to_string().contains("invalid type: string \"three\""),
            "{e}"
        );

        let e = from_value::<Outer>(&parse("kind = 'alpha'\n[inner]\nn = -1")).unwrap_err();
        assert_eq!(render_path(&e.path), "inner.n");
    }
}
