//! Data that cannot make the trip: an argument that fails to serialize is
//! that future's `Error::Serialization`, reported in the parent before
//! anything is sent; a result that fails to serialize is that future's
//! error too; and in a chunked `map` either fails only its own item. Serde
//! features that postcard cannot carry (untagged enums, flatten) are that
//! future's `Error::Serialization` too, naming the feature and the fix.

use crate::fixtures;

use concurrent_futures::{Error, ProcessPoolExecutor, ThreadPoolExecutor};
use fixtures::{PATIENCE, Scratch, pid, settle};
use serde::{Deserialize, Serialize, Serializer};

/// A value that serializes unless `refuse` says otherwise: then its
/// `Serialize` returns an error, or panics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Touchy {
    n: u32,
    dir: String,
    refuse: Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Refuse {
    No,
    WithAnError,
    WithAPanic,
}

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.refuse {
            Refuse::No => (self.n, &self.dir, self.refuse).serialize(serializer),
            Refuse::WithAnError => Err(serde::ser::Error::custom("Touchy refuses")),
            Refuse::WithAPanic => {
                fixtures::quiet_expected_panics();
                panic!("{}Touchy panics", fixtures::EXPECTED)
            }
        }
    }
}

/// Leaves a mark in the directory, then echoes its argument back.
fn touch(arg: Touchy) -> Touchy {
    std::fs::write(format!("{}/ran-{}", arg.dir, arg.n), "").unwrap();
    arg
}

#[test]
fn a_bad_argument_fails_before_anything_is_sent() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("bad-argument");
    let executor = ProcessPoolExecutor::new(1);
    for refuse in [Refuse::WithAnError, Refuse::WithAPanic] {
        let arg = Touchy {
            n: 1,
            dir: scratch.arg(),
            refuse,
        };
        let future = executor.submit(touch, arg);
        assert!(future.done(), "refused at submit, in this process");
        let Err(Error::Serialization(message)) = settle(&future) else {
            panic!("expected Error::Serialization for {refuse:?}");
        };
        assert!(message.contains("argument"), "{message}");
    }
    assert_eq!(fixtures::children(), [], "not even a worker was started");
    let ok = Touchy {
        n: 2,
        dir: scratch.arg(),
        refuse: Refuse::No,
    };
    assert_eq!(settle(&executor.submit(touch, ok.clone())), Ok(ok));
    assert_eq!(scratch.files("ran-"), ["ran-2"], "only the good task ran");
}

/// Returns a value that refuses to serialize, in the worker.
fn gives_back(refuse: Refuse) -> Touchy {
    Touchy {
        n: 0,
        dir: String::new(),
        refuse,
    }
}

#[test]
fn a_bad_result_fails_only_its_task() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    for refuse in [Refuse::WithAnError, Refuse::WithAPanic] {
        let Err(Error::Serialization(message)) = settle(&executor.submit(gives_back, refuse))
        else {
            panic!("expected Error::Serialization for {refuse:?}");
        };
        assert!(message.contains("result"), "{message}");
    }
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "the worker survives and goes on"
    );
}

/// Doubles `n`, unless it is 3, whose result refuses to serialize.
fn double_but_not_3(n: u32) -> Touchy {
    let refuse = if n == 3 {
        Refuse::WithAnError
    } else {
        Refuse::No
    };
    Touchy {
        n: n * 2,
        dir: String::new(),
        refuse,
    }
}

fn value(arg: Touchy) -> u32 {
    arg.n
}

#[test]
fn a_bad_item_fails_only_itself_in_a_chunk() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    for chunksize in [1, 4, 100] {
        // Item 5's argument refuses to serialize.
        let inputs = (0..20).map(|n| Touchy {
            n,
            dir: String::new(),
            refuse: if n == 5 {
                Refuse::WithAnError
            } else {
                Refuse::No
            },
        });
        let results: Vec<_> = executor
            .map(value, inputs)
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        for (n, outcome) in (0..20).zip(results) {
            match n {
                5 => assert!(
                    matches!(&outcome, Err(Error::Serialization(m)) if m.contains("argument")),
                    "item 5, chunksize {chunksize}: {outcome:?}"
                ),
                _ => assert_eq!(outcome, Ok(n), "item {n}, chunksize {chunksize}"),
            }
        }

        // Item 3's result refuses to serialize.
        let results: Vec<_> = executor
            .map(double_but_not_3, 0..20)
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        for (n, outcome) in (0..20).zip(results) {
            match (n, outcome) {
                (3, Err(Error::Serialization(m))) => assert!(m.contains("result"), "{m}"),
                (3, other) => panic!("item 3, chunksize {chunksize}: {other:?}"),
                (n, outcome) => assert_eq!(outcome.map(|t| t.n), Ok(n * 2)),
            }
        }
    }
}

/// Deserializes with `deserialize_any`, which postcard cannot serve.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

/// Serializes as a map of unknown length, which postcard cannot write.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    inner: Inner,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Inner {
    name: String,
}

fn untagged_len(value: Untagged) -> u32 {
    match value {
        Untagged::Number(n) => n,
        Untagged::Text(text) => text.len() as u32,
    }
}

fn untagged_of(n: u32) -> Untagged {
    Untagged::Number(n)
}

fn flattened_id(value: Flattened) -> u32 {
    value.id
}

#[test]
fn serde_features_postcard_cannot_carry_name_the_fix() {
    let _alone = fixtures::alone();
    let names_the_fix = |result: Result<u32, Error>, feature: &str, fix: &str| match result {
        Err(Error::Serialization(message)) => assert!(
            message.contains(feature) && message.contains(fix),
            "{message:?} should name {feature:?} and {fix:?}"
        ),
        other => panic!("expected Error::Serialization naming {feature}, got {other:?}"),
    };
    let executor = ProcessPoolExecutor::new(1);

    // An untagged argument serializes, and fails to deserialize in the worker.
    let arg = executor.submit(untagged_len, Untagged::Text("web1".into()));
    names_the_fix(
        arg.result_timeout(PATIENCE),
        "untagged",
        "externally tagged enum",
    );

    // An untagged result: the worker sends it, and the parent cannot read it.
    let result = executor.submit(untagged_of, 7);
    names_the_fix(
        result.result_timeout(PATIENCE).map(untagged_len),
        "untagged",
        "externally tagged enum",
    );

    // A flattened argument cannot even be written: it fails at submit.
    let flattened = Flattened {
        id: 1,
        inner: Inner {
            name: "web1".into(),
        },
    };
    let arg = executor.submit(flattened_id, flattened);
    names_the_fix(
        arg.result_timeout(PATIENCE),
        "flatten",
        "write the flattened fields out",
    );

    // The pool goes on, and the thread pool, which does not serialize,
    // takes the same types as they are.
    assert_eq!(executor.submit(double, 21).result_timeout(PATIENCE), Ok(42));
    let threads = ThreadPoolExecutor::new(1);
    let text = threads.submit(untagged_len, Untagged::Text("web1".into()));
    assert_eq!(text.result_timeout(PATIENCE), Ok(4));
    let flattened = Flattened {
        id: 5,
        inner: Inner {
            name: String::new(),
        },
    };
    assert_eq!(
        threads
            .submit(flattened_id, flattened)
            .result_timeout(PATIENCE),
        Ok(5)
    );
}

fn double(n: u32) -> u32 {
    n * 2
}

/// A number whose `Deserialize` panics on 13 (in the worker, for an
/// argument), and whose `Drop` panics if it is `armed`. A value is armed
/// where it is made, or where it arrives if it was sent with `arm`; so a
/// test can have only the worker's copy panic.
#[derive(Debug, PartialEq, Serialize)]
struct Unlucky {
    n: u32,
    arm: bool,
    #[serde(skip)]
    armed: bool,
}

impl<'de> Deserialize<'de> for Unlucky {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (n, arm) = <(u32, bool)>::deserialize(deserializer)?;
        if n == 13 {
            fixtures::quiet_expected_panics();
            panic!("{}Unlucky's Deserialize panics on 13", fixtures::EXPECTED);
        }
        Ok(Unlucky {
            n,
            arm: false,
            armed: arm,
        })
    }
}

impl Drop for Unlucky {
    fn drop(&mut self) {
        if self.armed {
            fixtures::quiet_expected_panics();
            panic!("{}Unlucky's Drop panics", fixtures::EXPECTED);
        }
    }
}

fn unlucky(n: u32) -> Unlucky {
    Unlucky {
        n,
        arm: false,
        armed: false,
    }
}

fn number(arg: Unlucky) -> u32 {
    arg.n
}

/// The worker's pid, in a result whose `Drop` panics there once sent.
fn pid_in_a_bomb(_: ()) -> Unlucky {
    Unlucky {
        n: std::process::id(),
        arm: false,
        armed: true,
    }
}

#[test]
fn an_argument_whose_deserialize_panics_fails_only_its_task_and_the_worker_serves_on() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    let Err(Error::Serialization(message)) = settle(&executor.submit(number, unlucky(13))) else {
        panic!("expected Error::Serialization for the argument 13");
    };
    assert!(
        message.contains("argument") && message.contains("Deserialize impl panicked"),
        "{message}"
    );
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "the same worker"
    );

    // In chunks of four: 12 ran before it, and 14 and 15 cannot be found
    // past its bytes; every other chunk is whole.
    let results: Vec<_> = executor
        .map(number, (0..20).map(unlucky))
        .chunksize(4)
        .timeout(PATIENCE)
        .collect();
    for (n, outcome) in (0..20).zip(results) {
        match n {
            13 => assert!(
                matches!(&outcome, Err(Error::Serialization(m)) if m.contains("Deserialize impl panicked")),
                "item 13: {outcome:?}"
            ),
            14 | 15 => assert!(
                matches!(&outcome, Err(Error::Serialization(m)) if m.starts_with("not run")),
                "item {n}: {outcome:?}"
            ),
            _ => assert_eq!(outcome, Ok(n), "item {n}"),
        }
    }
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "the same worker"
    );
}

#[test]
fn drops_that_panic_in_the_worker_fail_at_most_their_task_and_the_worker_serves_on() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    // The argument's Drop runs at the end of the task: the task's panic.
    let bomb = Unlucky {
        n: 1,
        arm: true,
        armed: false,
    };
    let outcome = settle(&executor.submit(number, bomb));
    assert!(
        matches!(&outcome, Err(Error::Panicked { message, .. }) if message.contains("Drop panics")),
        "{outcome:?}"
    );
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "the same worker"
    );
    // The result's Drop runs in the worker once it is sent: the result
    // arrives whole.
    let result = settle(&executor.submit(pid_in_a_bomb, ())).unwrap();
    assert_eq!(result.n, worker);
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "the same worker"
    );
}
