//! Bad input to a process pool gets a clear error, and nothing else is lost:
//! zero-sized settings. (A result larger than the pool can take in, and the
//! executable replaced on disk, need helper runs of their binary: they are
//! in `tests/process_isolation/limits.rs`.)

use crate::fixtures;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::pid;

#[test]
fn zero_settings_are_invalid_arguments() {
    let _alone = fixtures::alone();
    let builds = [
        (
            "max_workers",
            ProcessPoolExecutor::builder().max_workers(0).build(),
        ),
        (
            "max_tasks_per_child",
            ProcessPoolExecutor::builder()
                .max_tasks_per_child(0)
                .build(),
        ),
        (
            "chunksize",
            ProcessPoolExecutor::builder().chunksize(0).build(),
        ),
    ];
    for (setting, built) in builds {
        match built {
            Err(Error::InvalidArgument(message)) => assert!(
                message.contains(setting),
                "the error names {setting}: {message}"
            ),
            other => panic!("{setting} = 0 built {other:?}"),
        }
    }
    let executor = ProcessPoolExecutor::new(1);
    for map in [
        executor.map(pid, [()]).chunksize(0),
        executor.map(pid, [()]).buffer_size(0),
    ] {
        let results: Vec<_> = map.collect();
        assert!(
            matches!(results[..], [Err(Error::InvalidArgument(_))]),
            "{results:?}"
        );
    }
}

#[test]
fn new_with_zero_workers_panics_naming_the_setting() {
    let _alone = fixtures::alone();
    let (panic, location) = fixtures::expect_panic(|| ProcessPoolExecutor::new(0));
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(message.contains("max_workers"), "{message}");
    // #[track_caller]: the panic points at this call, not into the library.
    let here = format!("{}:{}:", file!(), line!() - 4);
    assert!(
        location.as_ref().is_some_and(|l| l.starts_with(&here)),
        "location {location:?}, expected {here}..."
    );
}
