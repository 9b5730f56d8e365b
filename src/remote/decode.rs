//! Layer: remote. May use: `panic`, serde and postcard. Decoding a task's
//! result in the front end's process: user
//! code (the result type's `Deserialize`) run on a transport's thread,
//! under guard. Beside [`codec`](super::codec), which calls it; both
//! transports' threads that decode get [`STACK_SIZE`].
//!
//! [`value`] wraps postcard's deserializer in [`Guard`], which passes every
//! call through and does two things on the way:
//!
//! - **Depth.** Each nested value costs the decoding thread some stack, and
//!   a worker encodes on its 8 MiB main thread what a pool thread decodes.
//!   A value nested deeper than [`MAX_DEPTH`] fails cleanly, as that task's
//!   [`Error::Serialization`](crate::Error::Serialization), instead of
//!   overflowing the stack (which aborts the whole program). The decoding
//!   threads get [`STACK_SIZE`], measured to hold that depth with room to
//!   spare; see the constants.
//! - **Messages.** postcard keeps no text for an error a `Deserialize` impl
//!   makes with `Error::custom`: every one reads "Serde Deserialization
//!   Error". The guard hands user code an error type of its own, which
//!   keeps the text, and carries it past postcard to the caller.
//!
//! A panic in a `Deserialize` impl is caught too: it is that task's error.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::panic;

/// How deep a decoded value may nest: every value that may hold others (a
/// struct, an enum, an option, a sequence, a map) counts one level below
/// its parent.
/// Measured on a linked list of `struct Node { value: u32, next:
/// Option<Box<Node>> }` (two levels a link), through this guard: about 160
/// bytes of stack a level in a release build, 1,200 in a debug build
/// (postcard alone: 64 and 500). So 4,096 levels take about 0.7 MiB
/// (release) or 4.9 MiB (debug) of a [`STACK_SIZE`] thread; a worker's 8
/// MiB main thread encodes far deeper values, which fail here cleanly.
/// (serde_json stops at 128.)
pub(crate) const MAX_DEPTH: usize = 4096;

/// The stack of a thread that decodes results: [`MAX_DEPTH`] levels of the
/// measured type, and their drop, three times over in a debug build and
/// twenty in a release one. Untouched pages of a stack cost no memory,
/// only address space.
pub(crate) const STACK_SIZE: usize = 16 << 20;

/// Decodes one `R` that fills `bytes` exactly. `Err` holds the reason in
/// words: the `Deserialize` impl's own message, its panic, the depth
/// limit, or postcard's complaint.
pub(crate) fn value<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    let context = Context::default();
    let mut input = postcard::Deserializer::from_bytes(bytes);
    let decoded = panic::catch(|| {
        let guard = Guard {
            inner: &mut input,
            context: &context,
        };
        R::deserialize(guard).map_err(|Failure(message)| message)
    });
    let value = match decoded {
        Ok(Ok(value)) => value,
        // A type that needs `deserialize_any`: name the serde feature and
        // the fix, as the other directions do.
        Ok(Err(message)) if message == postcard::Error::WontImplement.to_string() => {
            return Err(explain(&postcard::Error::WontImplement));
        }
        Ok(Err(message)) => return Err(message),
        Err(panicked) => return Err(format!("its Deserialize impl panicked: {panicked}")),
    };
    let reason = match input.finalize() {
        Ok([]) => return Ok(value),
        Ok(rest) => format!(
            "{} bytes were left over after it (does the type match the task's?)",
            rest.len()
        ),
        Err(error) => error.to_string(),
    };
    // A value of the wrong type: its Drop is user code too.
    panic::drop_caught(value);
    Err(reason)
}

/// A postcard error as text for [`Error::Serialization`](crate::Error::Serialization), with the fix when
/// the cause is a serde feature postcard cannot carry (see `Payload`'s docs).
pub(crate) fn explain(error: &postcard::Error) -> String {
    match error {
        postcard::Error::WontImplement => format!(
            "{error}: the type deserializes with `deserialize_any`, which needs a self-describing \
             format, and postcard is not one; `#[serde(untagged)]` and `#[serde(tag = \"...\")]` \
             enums, `#[serde(flatten)]` and `serde_json::Value` do this. Use an externally tagged \
             enum (serde's default), write the flattened fields out, or send JSON as a `String`; \
             the thread pool, which does not serialize, takes such types as they are"
        ),
        postcard::Error::SerializeSeqLengthUnknown => format!(
            "{error}: the type serializes a map or sequence without saying its length first, as \
             `#[serde(flatten)]` does, and postcard needs the length; write the flattened fields \
             out, or collect into a `Vec` or map first"
        ),
        other => other.to_string(),
    }
}

/// What one decoding shares: the depth now, and the last message user code
/// gave an error, for when the error comes back through postcard.
#[derive(Default)]
struct Context {
    depth: Cell<usize>,
    message: RefCell<Option<String>>,
}

impl Context {
    /// The error to give postcard for `failure`, keeping its message here.
    fn stash<E: de::Error>(&self, Failure(message): Failure) -> E {
        let error = E::custom(&message);
        *self.message.borrow_mut() = Some(message);
        error
    }

    /// Our error for an error that came back through postcard: the message
    /// user code gave, if it gave one, else postcard's own.
    fn recover(&self, error: impl fmt::Display) -> Failure {
        Failure(
            self.message
                .borrow_mut()
                .take()
                .unwrap_or_else(|| error.to_string()),
        )
    }
}

/// The error type user code sees: it keeps the message.
#[derive(Debug)]
struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl de::Error for Failure {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Failure(message.to_string())
    }
}

/// A deserializer for one value: postcard's, counted and translated.
struct Guard<'c, D> {
    inner: D,
    context: &'c Context,
}

/// A visitor, seed or access of user code, wrapped the same way.
struct Wrap<'c, T> {
    inner: T,
    context: &'c Context,
}

impl<'c, T> Wrap<'c, T> {
    fn of<U>(&self, inner: U) -> Wrap<'c, U> {
        Wrap {
            inner,
            context: self.context,
        }
    }
}

macro_rules! forward {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?;)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value, Failure> {
            let context = self.context;
            let depth = context.depth.get() + 1;
            if depth > MAX_DEPTH {
                return Err(Failure(format!(
                    "it nests deeper than {MAX_DEPTH} levels, more than a pool thread can decode \
                     safely; flatten it (a Vec instead of a linked list, say)"
                )));
            }
            context.depth.set(depth);
            let result = self
                .inner
                .$method($($($arg,)*)? Wrap { inner: visitor, context })
                .map_err(|error| context.recover(error));
            context.depth.set(depth - 1);
            result
        }
    )*};
}

/// [`forward!`] for a value that holds no other (a number, a string): it
/// nests nothing below it, so it costs no depth to count, and a vector of
/// numbers decodes without the count's work on each.
macro_rules! leaf {
    ($($method:ident;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
            let context = self.context;
            (self.inner.$method(Wrap { inner: visitor, context })).map_err(|e| context.recover(e))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guard<'_, D> {
    type Error = Failure;

    leaf! {
        deserialize_bool;
        deserialize_i8; deserialize_i16; deserialize_i32; deserialize_i64; deserialize_i128;
        deserialize_u8; deserialize_u16; deserialize_u32; deserialize_u64; deserialize_u128;
        deserialize_f32; deserialize_f64; deserialize_char;
        deserialize_str; deserialize_string; deserialize_bytes; deserialize_byte_buf;
        deserialize_unit;
    }

    forward! {
        deserialize_any;
        deserialize_option;
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq;
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier; deserialize_ignored_any;
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Calls user code that fails with a [`Failure`], and hands postcard its
/// own error type, stashing the message.
macro_rules! visit {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, $($arg: $ty),*) -> Result<V::Value, E> {
            let context = self.context;
            self.inner.$method($($arg),*).map_err(|failure| context.stash(failure))
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit! {
        visit_bool(v: bool);
        visit_i8(v: i8); visit_i16(v: i16); visit_i32(v: i32); visit_i64(v: i64); visit_i128(v: i128);
        visit_u8(v: u8); visit_u16(v: u16); visit_u32(v: u32); visit_u64(v: u64); visit_u128(v: u128);
        visit_f32(v: f32); visit_f64(v: f64); visit_char(v: char);
        visit_str(v: &str); visit_borrowed_str(v: &'de str); visit_string(v: String);
        visit_bytes(v: &[u8]); visit_borrowed_bytes(v: &'de [u8]); visit_byte_buf(v: Vec<u8>);
        visit_none(); visit_unit();
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let context = self.context;
        (self.inner.visit_some(Guard { inner, context })).map_err(|f| context.stash(f))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let context = self.context;
        (self.inner.visit_newtype_struct(Guard { inner, context })).map_err(|f| context.stash(f))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let context = self.context;
        let seq = self.of(seq);
        (self.inner.visit_seq(seq)).map_err(|f| context.stash(f))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let context = self.context;
        let map = self.of(map);
        (self.inner.visit_map(map)).map_err(|f| context.stash(f))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let context = self.context;
        let data = self.of(data);
        (self.inner.visit_enum(data)).map_err(|f| context.stash(f))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
        let context = self.context;
        (self.inner.deserialize(Guard { inner, context })).map_err(|f| context.stash(f))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = Failure;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Failure> {
        let seed = self.of(seed);
        let context = self.context;
        (self.inner.next_element_seed(seed)).map_err(|e| context.recover(e))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = Failure;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failure> {
        let seed = self.of(seed);
        let context = self.context;
        (self.inner.next_key_seed(seed)).map_err(|e| context.recover(e))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Failure> {
        let seed = self.of(seed);
        let context = self.context;
        (self.inner.next_value_seed(seed)).map_err(|e| context.recover(e))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'c, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'c, A> {
    type Error = Failure;
    type Variant = Wrap<'c, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Failure> {
        let context = self.context;
        let seed = self.of(seed);
        let (value, variant) = (self.inner.variant_seed(seed)).map_err(|e| context.recover(e))?;
        Ok((
            value,
            Wrap {
                inner: variant,
                context,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = Failure;

    fn unit_variant(self) -> Result<(), Failure> {
        let context = self.context;
        self.inner.unit_variant().map_err(|e| context.recover(e))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Failure> {
        let context = self.context;
        let seed = self.of(seed);
        (self.inner.newtype_variant_seed(seed)).map_err(|e| context.recover(e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Failure> {
        let context = self.context;
        let visitor = self.of(visitor);
        (self.inner.tuple_variant(len, visitor)).map_err(|e| context.recover(e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failure> {
        let context = self.context;
        let visitor = self.of(visitor);
        (self.inner.struct_variant(fields, visitor)).map_err(|e| context.recover(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Node {
        value: u32,
        next: Option<Box<Node>>,
    }

    fn list(depth: u32) -> Option<Box<Node>> {
        let mut head = None;
        for value in 0..depth {
            head = Some(Box::new(Node { value, next: head }));
        }
        head
    }

    /// Drops a list without recursion, as a test must for deep ones.
    fn unlink(mut head: Option<Box<Node>>) {
        while let Some(mut node) = head {
            head = node.next.take();
        }
    }

    #[test]
    fn values_round_trip_through_the_guard() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Shape {
            Unit,
            New(u8),
            Tuple(i64, String),
            Struct { a: Vec<u16>, b: (bool, char) },
        }
        let shapes = vec![
            Shape::Unit,
            Shape::New(7),
            Shape::Tuple(-3, "x".into()),
            Shape::Struct {
                a: vec![1, 2],
                b: (true, 'z'),
            },
        ];
        let map: std::collections::BTreeMap<String, f64> = [("half".into(), 0.5)].into();
        let bytes = postcard::to_allocvec(&(&shapes, &map, Some(1_u128))).unwrap();
        type All = (
            Vec<Shape>,
            std::collections::BTreeMap<String, f64>,
            Option<u128>,
        );
        assert_eq!(value::<All>(&bytes).unwrap(), (shapes, map, Some(1)));
        let small = list(100);
        let bytes = postcard::to_allocvec(&small).unwrap();
        assert_eq!(value::<Option<Box<Node>>>(&bytes).unwrap(), small);
    }

    #[test]
    fn a_custom_message_survives() {
        #[derive(Debug)]
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = u8::deserialize(d)?;
                Err(de::Error::custom(format!("Picky refuses {n}")))
            }
        }
        let bytes = postcard::to_allocvec(&(1_u8, vec![9_u8])).unwrap();
        let error = value::<(u8, Vec<Picky>)>(&bytes).unwrap_err();
        assert_eq!(error, "Picky refuses 9");
    }

    #[test]
    fn a_panic_is_an_error() {
        #[derive(Debug)]
        struct Panics;
        impl<'de> Deserialize<'de> for Panics {
            fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                panic!("Panics panics")
            }
        }
        let error = value::<Panics>(&[]).unwrap_err();
        assert!(error.contains("Panics panics"), "{error}");
    }

    #[test]
    fn leftover_bytes_are_an_error() {
        let error = value::<u8>(&[1, 2]).unwrap_err();
        assert!(error.contains("left over"), "{error}");
    }

    /// Decodes a list `MAX_DEPTH` deep on a thread of `STACK_SIZE`, and
    /// fails one level deeper with the depth in the message.
    #[test]
    #[cfg_attr(miri, ignore = "too slow under miri")]
    fn the_guard_holds_its_depth() {
        std::thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(|| {
                // MAX_DEPTH levels of Option, each holding a Node struct:
                // 2 levels a link.
                let links = u32::try_from(MAX_DEPTH / 2 - 1).unwrap();
                let deep = list(links);
                let bytes = postcard::to_allocvec(&deep).unwrap();
                let back = value::<Option<Box<Node>>>(&bytes).unwrap();
                assert_eq!(back.as_ref().map(|n| n.value), Some(links - 1));
                unlink(back);
                unlink(deep);
                let deeper = list(links + 2);
                let bytes = postcard::to_allocvec(&deeper).unwrap();
                let error = value::<Option<Box<Node>>>(&bytes).unwrap_err();
                assert!(error.contains("deeper than 4096 levels"), "{error}");
                unlink(deeper);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
