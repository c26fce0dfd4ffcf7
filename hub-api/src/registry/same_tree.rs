//! Whether serializing a value would give exactly a given JSON tree, found out by walking the
//! tree alongside the serialization instead of building a second tree to compare.
//!
//! The typed round trip of a write asks this first: a body already in its kind's canonical
//! form (every renewal of a Lease, most writes of a controller) then keeps its tree as it
//! is, without a copy built, compared and dropped.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Number, Value};

/// True when `serde_json::to_value(value)` would equal `tree`, leaving out the top-level
/// field `skip` on both sides.
pub(super) fn serializes_to<T: Serialize + ?Sized>(value: &T, tree: &Value, skip: &str) -> bool {
    value.serialize(Matcher { tree, skip }).is_ok()
}

/// The serialization differs from the tree; nothing more is needed to fall back.
#[derive(Debug)]
struct Differs;

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("differs")
    }
}

impl std::error::Error for Differs {}

impl ser::Error for Differs {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Differs
    }
}

type Outcome = Result<(), Differs>;

fn check(same: bool) -> Outcome {
    if same { Ok(()) } else { Err(Differs) }
}

/// Compares one value's serialization with `tree`. `skip` names a field left out of the
/// comparison; it applies to the top level only (nested matchers get an empty one).
#[derive(Clone, Copy)]
struct Matcher<'a> {
    tree: &'a Value,
    skip: &'a str,
}

impl<'a> Matcher<'a> {
    fn nested(tree: &'a Value) -> Matcher<'a> {
        Matcher { tree, skip: "" }
    }

    fn number(self, number: Option<Number>) -> Outcome {
        // `to_value` makes a float that JSON cannot hold (NaN, infinities) a null.
        match (number, self.tree) {
            (Some(n), Value::Number(t)) => check(&n == t),
            (None, Value::Null) => Ok(()),
            _ => Err(Differs),
        }
    }

    fn object(self) -> Result<&'a Map<String, Value>, Differs> {
        self.tree.as_object().ok_or(Differs)
    }
}

/// Walks an array alongside a sequence.
struct SeqMatcher<'a> {
    items: std::slice::Iter<'a, Value>,
}

/// Walks an object alongside a map or struct: every field serialized must be in the object
/// with the same value, and the object may hold no others.
struct MapMatcher<'a> {
    object: &'a Map<String, Value>,
    skip: &'a str,
    seen: usize,
    key: Option<&'a Value>,
}

impl<'a> MapMatcher<'a> {
    fn new(object: &'a Map<String, Value>, skip: &'a str) -> MapMatcher<'a> {
        MapMatcher {
            object,
            skip,
            seen: 0,
            key: None,
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Outcome {
        if !self.skip.is_empty() && key == self.skip {
            return Ok(());
        }
        let item = self.object.get(key).ok_or(Differs)?;
        self.seen += 1;
        value.serialize(Matcher::nested(item))
    }

    fn end(self) -> Outcome {
        let skipped = usize::from(!self.skip.is_empty() && self.object.contains_key(self.skip));
        check(self.seen + skipped == self.object.len())
    }
}

impl<'a> ser::Serializer for Matcher<'a> {
    type Ok = ();
    type Error = Differs;
    type SerializeSeq = SeqMatcher<'a>;
    type SerializeTuple = Impossible<(), Differs>;
    type SerializeTupleStruct = Impossible<(), Differs>;
    type SerializeTupleVariant = Impossible<(), Differs>;
    type SerializeMap = MapMatcher<'a>;
    type SerializeStruct = MapMatcher<'a>;
    type SerializeStructVariant = Impossible<(), Differs>;

    fn serialize_bool(self, v: bool) -> Outcome {
        check(self.tree.as_bool() == Some(v))
    }
    fn serialize_i8(self, v: i8) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_u8(self, v: u8) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Outcome {
        self.number(Some(v.into()))
    }
    fn serialize_f32(self, v: f32) -> Outcome {
        self.number(Number::from_f64(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Outcome {
        self.number(Number::from_f64(v))
    }
    fn serialize_char(self, v: char) -> Outcome {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Outcome {
        check(self.tree.as_str() == Some(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Outcome {
        // `to_value` writes bytes as an array of numbers.
        let items = self.tree.as_array().ok_or(Differs)?;
        check(items.len() == v.len() && items.iter().zip(v).all(|(t, b)| t.as_u64() == Some(u64::from(*b))))
    }
    fn serialize_none(self) -> Outcome {
        check(self.tree.is_null())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Outcome {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Outcome {
        check(self.tree.is_null())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Outcome {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Outcome {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Outcome {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Outcome {
        let object = self.object()?;
        check(object.len() == 1)?;
        value.serialize(Matcher::nested(object.get(variant).ok_or(Differs)?))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<SeqMatcher<'a>, Differs> {
        let items = self.tree.as_array().ok_or(Differs)?;
        Ok(SeqMatcher { items: items.iter() })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Differs> {
        // No Kubernetes type serializes tuples; the caller builds the tree instead.
        Err(Differs)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Differs> {
        Err(Differs)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Differs> {
        // No Kubernetes type serializes so; the caller builds the tree instead.
        Err(Differs)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapMatcher<'a>, Differs> {
        Ok(MapMatcher::new(self.object()?, self.skip))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapMatcher<'a>, Differs> {
        Ok(MapMatcher::new(self.object()?, self.skip))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Differs> {
        Err(Differs)
    }
}

impl ser::SerializeSeq for SeqMatcher<'_> {
    type Ok = ();
    type Error = Differs;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Outcome {
        let item = self.items.next().ok_or(Differs)?;
        value.serialize(Matcher::nested(item))
    }
    fn end(self) -> Outcome {
        check(self.items.len() == 0)
    }
}

impl<'a> ser::SerializeMap for MapMatcher<'a> {
    type Ok = ();
    type Error = Differs;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Outcome {
        self.key = Some(key.serialize(KeyLookup(self.object))?);
        self.seen += 1;
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Outcome {
        value.serialize(Matcher::nested(self.key.take().ok_or(Differs)?))
    }
    fn end(self) -> Outcome {
        check(self.seen == self.object.len())
    }
}

impl ser::SerializeStruct for MapMatcher<'_> {
    type Ok = ();
    type Error = Differs;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Outcome {
        self.field(key, value)
    }
    fn skip_field(&mut self, _: &'static str) -> Outcome {
        Ok(())
    }
    fn end(self) -> Outcome {
        MapMatcher::end(self)
    }
}

/// Looks a map key up in the object, as the string `to_value` would make of it. Only keys
/// that serialize as strings (all of Kubernetes' maps) are followed; any other counts as
/// different, and the caller builds the tree instead.
struct KeyLookup<'a>(&'a Map<String, Value>);

macro_rules! not_a_string {
    ($($method:ident($($arg:ty),*) -> $out:ty),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$out, Differs> { Err(Differs) })*
    };
}

impl<'a> ser::Serializer for KeyLookup<'a> {
    type Ok = &'a Value;
    type Error = Differs;
    type SerializeSeq = Impossible<&'a Value, Differs>;
    type SerializeTuple = Impossible<&'a Value, Differs>;
    type SerializeTupleStruct = Impossible<&'a Value, Differs>;
    type SerializeTupleVariant = Impossible<&'a Value, Differs>;
    type SerializeMap = Impossible<&'a Value, Differs>;
    type SerializeStruct = Impossible<&'a Value, Differs>;
    type SerializeStructVariant = Impossible<&'a Value, Differs>;

    fn serialize_str(self, key: &str) -> Result<&'a Value, Differs> {
        self.0.get(key).ok_or(Differs)
    }
    not_a_string! {
        serialize_bool(bool) -> &'a Value, serialize_i8(i8) -> &'a Value,
        serialize_i16(i16) -> &'a Value, serialize_i32(i32) -> &'a Value,
        serialize_i64(i64) -> &'a Value, serialize_u8(u8) -> &'a Value,
        serialize_u16(u16) -> &'a Value, serialize_u32(u32) -> &'a Value,
        serialize_u64(u64) -> &'a Value, serialize_f32(f32) -> &'a Value,
        serialize_f64(f64) -> &'a Value, serialize_char(char) -> &'a Value,
        serialize_bytes(&[u8]) -> &'a Value, serialize_none() -> &'a Value,
        serialize_unit() -> &'a Value, serialize_unit_struct(&'static str) -> &'a Value,
        serialize_unit_variant(&'static str, u32, &'static str) -> &'a Value,
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant,
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<&'a Value, Differs> {
        Err(Differs)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<&'a Value, Differs> {
        Err(Differs)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'a Value, Differs> {
        Err(Differs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use serde_json::json;

    fn lease() -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("agent-1".into()),
                labels: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("agent-1".into()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime("2026-12-07T08:00:00.123456Z".parse().unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_value_matches_its_own_tree() {
        let lease = lease();
        assert!(serializes_to(&lease, &serde_json::to_value(&lease).unwrap(), ""));
        let cm = ConfigMap {
            data: Some([("k".to_string(), "v".to_string())].into()),
            binary_data: Some([("b".to_string(), k8s_openapi::ByteString(vec![1, 2, 3]))].into()),
            ..Default::default()
        };
        assert!(serializes_to(&cm, &serde_json::to_value(&cm).unwrap(), ""));
        let nested = json!({"a": [1, -2, 2.5, null, true, "x", {"b": []}]});
        assert!(serializes_to(&nested, &nested, ""));
    }

    #[test]
    fn any_difference_is_found() {
        let lease = lease();
        let tree = serde_json::to_value(&lease).unwrap();
        let changed = |edit: &dyn Fn(&mut Value)| {
            let mut t = tree.clone();
            edit(&mut t);
            serializes_to(&lease, &t, "")
        };
        assert!(!changed(&|t| t["spec"]["holderIdentity"] = "other".into()));
        assert!(!changed(&|t| t["spec"]["leaseDurationSeconds"] = json!(40.0)));
        assert!(!changed(&|t| t["spec"]["leaseDurationSeconds"] = json!("40")));
        // The same instant written another way is not the canonical form.
        assert!(!changed(
            &|t| t["spec"]["renewTime"] = "2026-12-07T08:00:00.123456+00:00".into()
        ));
        // A field the typed form leaves out, even a null one, and a missing field.
        assert!(!changed(&|t| t["spec"]["bogus"] = json!(1)));
        assert!(!changed(&|t| t["spec"]["acquireTime"] = Value::Null));
        assert!(!changed(&|t| {
            t["spec"].as_object_mut().unwrap().remove("renewTime");
        }));
        assert!(!changed(&|t| t["metadata"]["labels"]["c"] = "d".into()));
        assert!(!changed(&|t| {
            t["metadata"]["labels"].as_object_mut().unwrap().remove("a");
        }));
        let list = json!({"a": [1, 2]});
        assert!(!serializes_to(&list, &json!({"a": [1]}), ""));
        assert!(!serializes_to(&list, &json!({"a": [1, 2, 3]}), ""));
        assert!(!serializes_to(&list, &json!({"a": {"0": 1, "1": 2}}), ""));
    }

    #[test]
    fn the_skipped_field_is_left_out_on_both_sides() {
        let lease = lease();
        let mut tree = serde_json::to_value(&lease).unwrap();
        tree["metadata"] = json!({"name": "another", "managedFields": []});
        assert!(!serializes_to(&lease, &tree, ""));
        assert!(serializes_to(&lease, &tree, "metadata"));
        tree.as_object_mut().unwrap().remove("metadata");
        assert!(serializes_to(&lease, &tree, "metadata"));
        // Only at the top level.
        let nested = json!({"spec": {"metadata": 1}});
        assert!(!serializes_to(&nested, &json!({"spec": {}}), "metadata"));
    }
}
