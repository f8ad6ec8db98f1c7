//! Strict JSON for request bodies: like `serde_json::from_slice` into a
//! `Value` (same recursion limit), but a key given twice in one object is an
//! error instead of "last one wins" — two `userName`s must not silently pick
//! one. SCIM attribute names are case-insensitive (RFC 7643 §2.1), so
//! `userName` and `USERNAME` in one object are the same key given twice.

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot represent"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Lower-cased keys seen so far: one hash look-up per key, so an
        // object with many keys stays linear.
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.to_lowercase()) {
                return Err(A::Error::custom(format!(
                    "the key {k:?} appears twice in one object (attribute names are case-insensitive)"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a whole body; trailing data is an error too.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(v) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::from_slice;

    #[test]
    fn duplicates_refused_everything_else_as_serde_json() {
        assert!(from_slice(br#"{"a":1,"a":2}"#).is_err());
        assert!(from_slice(br#"{"x":{"a":1,"a":1}}"#).is_err());
        assert!(from_slice(br#"[{"a":1},{"a":2}]"#).is_ok());
        assert!(from_slice(br#"{"userName":"a@x","USERNAME":"b@x"}"#).is_err());
        assert!(from_slice(br#"{"roles":["admin"],"Roles":["member"]}"#).is_err());
        assert!(
            from_slice(br#"{"a":{"b":1},"c":{"B":1}}"#).is_ok(),
            "keys of different objects"
        );
        let v = from_slice(br#"{"a":[1,-2,3.5,"s",true,null,{}]}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a":[1,-2,3.5,"s",true,null,{}]}));
        assert!(from_slice(b"{} x").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(from_slice(deep.as_bytes()).is_err(), "recursion limit still applies");
    }
}
