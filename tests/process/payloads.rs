//! Big payloads of any type: a `Vec<f64>`, a struct of big vectors, nested
//! and enum types, as arguments and results, through `submit`, `map` and
//! `starmap`, come back equal, at sizes on both sides of the size from
//! which the process transport takes its shared arena (256 KiB). A
//! `Serialize` that fails or panics while a big argument is encoded where
//! it is sent fails that task alone, and the pool's next big payloads
//! still arrive whole.

use crate::fixtures;

use std::sync::atomic::{AtomicU32, Ordering};

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::settle;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The size from which the process transport takes its arena.
const ARENA: usize = 256 << 10;

/// `len` numbers, each telling its place and `seed` apart.
fn numbers(len: usize, seed: u64) -> Vec<f64> {
    (0..len as u64)
        .map(|n| (n * 31 + seed) as f64 / 7.0)
        .collect()
}

fn same_numbers(numbers: Vec<f64>) -> Vec<f64> {
    numbers
}

/// The numbers' sum and count, to check an argument arrived whole.
fn sum(numbers: Vec<f64>) -> (f64, usize) {
    (numbers.iter().sum(), numbers.len())
}

/// A struct of three big vectors of different number types, and a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Three {
    name: String,
    x: Vec<f64>,
    y: Vec<f32>,
    z: Vec<u64>,
}

impl Three {
    fn new(len: usize, seed: u64) -> Self {
        Three {
            name: format!("three {len} {seed}"),
            x: numbers(len, seed),
            y: numbers(len, seed + 1)
                .into_iter()
                .map(|n| n as f32)
                .collect(),
            z: (0..len as u64).map(|n| n.wrapping_mul(seed + 3)).collect(),
        }
    }
}

/// Each vector reversed, and the name marked: a result that differs from
/// the argument, so that an argument sent back unread would show.
fn reversed(mut three: Three) -> Three {
    three.name.push_str(" reversed");
    three.x.reverse();
    three.y.reverse();
    three.z.reverse();
    three
}

/// Nested and enum types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Numbers(Vec<f64>),
    Pair(Box<Three>, Vec<Option<Shape>>),
}

fn shapes(len: usize) -> Vec<Shape> {
    vec![
        Shape::Empty,
        Shape::Numbers(numbers(len, 5)),
        Shape::Pair(
            Box::new(Three::new(len / 2, 6)),
            vec![
                None,
                Some(Shape::Numbers(numbers(len / 3, 7))),
                Some(Shape::Empty),
            ],
        ),
    ]
}

fn same_shape(shape: Shape) -> Shape {
    shape
}

/// Bytes in a struct, so that serde (not the plain-vector fast path)
/// encodes them: `len` bytes are `len + 3` encoded, for the sizes here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wrapped {
    bytes: Vec<u8>,
}

fn wrapped_len(wrapped: Wrapped) -> usize {
    wrapped.bytes.len()
}

fn same_wrapped(wrapped: Wrapped) -> Wrapped {
    wrapped
}

#[test]
fn a_vec_f64_round_trips_at_every_size_around_the_arena() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let at = ARENA / 8;
    for len in [0, 1, at - 1, at, at + 1, 2 << 20] {
        let sent = numbers(len, len as u64);
        let expected = (sent.iter().sum::<f64>(), len);
        assert_eq!(
            settle(&executor.submit(sum, sent.clone())),
            Ok(expected),
            "argument of {len}"
        );
        assert_eq!(
            settle(&executor.submit(same_numbers, sent.clone())),
            Ok(sent),
            "result of {len}"
        );
    }
}

#[test]
fn an_encoding_round_trips_at_every_size_around_the_arena() {
    // The sizes from which an argument is left to be encoded where it is
    // sent, and from which the transport takes its arena.
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    for len in [ARENA - 5, ARENA - 4, ARENA - 3, ARENA - 2, 3 << 20] {
        let sent = Wrapped {
            bytes: (0..len).map(|n| (n % 253) as u8).collect(),
        };
        assert_eq!(settle(&executor.submit(wrapped_len, sent.clone())), Ok(len));
        assert_eq!(
            settle(&executor.submit(same_wrapped, sent.clone())),
            Ok(sent)
        );
    }
}

#[test]
fn a_struct_of_big_vectors_round_trips_through_submit_map_and_starmap() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let len = 1 << 20;
    let three = Three::new(len, 1);
    assert_eq!(
        settle(&executor.submit(reversed, three.clone())),
        Ok(reversed(three))
    );
    // A chunk of big items: its arguments and its outcomes are big together.
    let inputs: Vec<Three> = (0..6).map(|seed| Three::new(len / 4, seed)).collect();
    let expected: Vec<Result<Three, Error>> =
        inputs.iter().cloned().map(reversed).map(Ok).collect();
    for chunksize in [1, 3] {
        let got: Vec<_> = executor
            .map(reversed, inputs.clone())
            .chunksize(chunksize)
            .collect();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
    let pairs = (0..4).map(|seed| (numbers(len / 2, seed), Three::new(len / 2, seed)));
    let got: Vec<_> = executor.starmap(pair_sums, pairs.clone()).collect();
    let expected: Vec<_> = pairs.map(|(a, b)| Ok(pair_sums(a, b))).collect();
    assert_eq!(got, expected);
}

fn pair_sums(numbers: Vec<f64>, three: Three) -> (f64, f64, usize) {
    (numbers.iter().sum(), three.x.iter().sum(), three.z.len())
}

#[test]
fn nested_and_enum_payloads_round_trip() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    for shape in shapes(1 << 20) {
        assert_eq!(
            settle(&executor.submit(same_shape, shape.clone())),
            Ok(shape)
        );
    }
    let got: Vec<_> = executor.map(same_shape, shapes(1 << 19)).collect();
    assert_eq!(got, shapes(1 << 19).into_iter().map(Ok).collect::<Vec<_>>());
}

/// Numbers whose `Serialize` fails halfway through its third run (the two
/// before measure it on `submit`; the third encodes it where it is sent),
/// with an error or a panic as `panics` says. It deserializes as numbers.
#[derive(Debug)]
struct FailsWhenSent {
    numbers: Vec<f64>,
    runs: AtomicU32,
    panics: bool,
}

impl Serialize for FailsWhenSent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let mut seq = serializer.serialize_seq(Some(self.numbers.len()))?;
        for (n, number) in self.numbers.iter().enumerate() {
            if run >= 2 && n == self.numbers.len() / 2 {
                if self.panics {
                    fixtures::quiet_expected_panics();
                    panic!("{}FailsWhenSent panics", fixtures::EXPECTED);
                }
                return Err(serde::ser::Error::custom("FailsWhenSent fails"));
            }
            seq.serialize_element(number)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for FailsWhenSent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(FailsWhenSent {
            numbers: Vec::deserialize(deserializer)?,
            runs: AtomicU32::new(0),
            panics: false,
        })
    }
}

fn count(fails: FailsWhenSent) -> usize {
    fails.numbers.len()
}

/// A result of `len` bytes that tell `seed` apart.
fn bytes_of(Wrapped { bytes }: Wrapped) -> Wrapped {
    let (len, seed) = (bytes.len(), bytes[0]);
    Wrapped {
        bytes: (0..len * 2).map(|n| (n as u8).wrapping_add(seed)).collect(),
    }
}

#[test]
fn a_serialize_that_fails_while_sending_fails_its_task_and_the_pool_goes_on() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    for panics in [false, true] {
        // A first big payload each way: the child has an arena of 1 MiB.
        let small = Wrapped {
            bytes: vec![1; 300 << 10],
        };
        assert_eq!(
            settle(&executor.submit(same_wrapped, small.clone())),
            Ok(small)
        );
        // Failing halfway into a new arena of 8 MiB, made for it: this
        // task fails, and nothing of it reaches the child.
        let fails = FailsWhenSent {
            numbers: numbers(1 << 20, 2),
            runs: AtomicU32::new(0),
            panics,
        };
        let failed = settle(&executor.submit(count, fails));
        assert!(
            matches!(&failed, Err(Error::Serialization(m)) if m.contains("could not be serialized")),
            "panics {panics}: {failed:?}"
        );
        // A small argument (below the arena's threshold) whose result
        // (400 KiB) fits the old arena: the child must have the new one by
        // now, or the pool would read its result out of memory the child
        // never wrote.
        let seed = Wrapped {
            bytes: vec![9; 200 << 10],
        };
        assert_eq!(
            settle(&executor.submit(bytes_of, seed.clone())),
            Ok(bytes_of(seed))
        );
        // And the next big payloads, each way.
        let three = Three::new(1 << 20, 4);
        assert_eq!(
            settle(&executor.submit(reversed, three.clone())),
            Ok(reversed(three))
        );
    }
}
