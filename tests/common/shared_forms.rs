//! What the tests of `Shared` on every executor share (tests/shared.rs,
//! tests/mpi.rs): tasks that use a handle in every form a task argument
//! takes, and a value that counts its decodings in the process that
//! decodes it.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use concurrent_futures::{Executor, Shared};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    table: Shared<Vec<u64>>,
    key: usize,
}

fn in_struct(job: Job) -> u64 {
    job.table[job.key]
}

fn in_tuple((table, key): (Shared<Vec<u64>>, usize)) -> u64 {
    table[key]
}

fn two_args(table: Shared<Vec<u64>>, key: usize) -> u64 {
    table[key]
}

fn plain((samples, key): (Shared<[f64]>, usize)) -> f64 {
    samples[key]
}

fn bytes((bytes, key): (Shared<[u8]>, usize)) -> u8 {
    bytes[key]
}

/// Everything a task can do with a handle, on any executor.
pub fn every_form(executor: &impl Executor) {
    let table = Shared::new((0..100).map(|n| n * 3).collect::<Vec<u64>>());
    let job = Job {
        table: table.clone(),
        key: 7,
    };
    assert_eq!(executor.submit(in_struct, job).result(), Ok(21));
    assert_eq!(
        executor.submit(in_tuple, (table.clone(), 9)).result(),
        Ok(27)
    );
    let keys: Vec<_> = (0..20).map(|key| (table.clone(), key)).collect();
    let mapped: Vec<_> = executor.map(in_tuple, keys.clone()).collect();
    assert_eq!(mapped, (0..20).map(|n| Ok(n * 3)).collect::<Vec<_>>());
    let starred: Vec<_> = executor.starmap(two_args, keys).collect();
    assert_eq!(starred, (0..20).map(|n| Ok(n * 3)).collect::<Vec<_>>());
    let samples = Shared::from_vec((0..1000).map(f64::from).collect());
    let got: Vec<_> = executor
        .map(plain, (0..10).map(|n| (samples.clone(), n * 100)))
        .collect();
    assert_eq!(
        got,
        (0..10).map(|n| Ok(f64::from(n * 100))).collect::<Vec<_>>()
    );
    let raw = Shared::from_slice(b"shared bytes");
    assert_eq!(executor.submit(bytes, (raw, 7)).result(), Ok(b'b'));
}

/// How many times this process decoded a [`Counted`].
pub static DECODED: AtomicUsize = AtomicUsize::new(0);

/// A big value that counts its decodings in the process that decodes it.
#[derive(Debug)]
pub struct Counted(pub Vec<u8>);

impl Serialize for Counted {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        let bytes = deserializer.deserialize_bytes(Visit)?;
        DECODED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(bytes))
    }
}

/// Runs in a worker: its pid, how often it decoded the value (a second
/// `Put` of the value would replace the decoded one, and decode again),
/// and a byte of the value.
pub fn look((value, at): (Shared<Counted>, usize)) -> (u32, usize, u8) {
    (
        std::process::id(),
        DECODED.load(Ordering::SeqCst),
        value.0[at],
    )
}
