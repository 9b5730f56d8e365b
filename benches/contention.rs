//! Round trip and `map` look-ahead, interleaved: ours, rayon and threadpool
//! take turns in every repetition, so a burst of outside load hits all of
//! them alike, and the medians of per-repetition ratios are comparable.
//!
//! Run it as is (two free cores), then on one core to see the contended
//! regime, which a shared machine falls into whenever another process takes
//! a core:
//!
//! ```text
//! cargo bench --bench contention
//! taskset -c 0 cargo bench --bench contention
//! ```

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{ident, median};
use concurrent_futures::ThreadPoolExecutor;
use crossbeam_channel::bounded;

const WORKERS: usize = 2;
const REPS: usize = 9;
const TRIPS: u64 = 3_000;
const ITEMS: u64 = 20_000;

/// Microseconds per call of `f` over `n` calls.
fn per_call(n: u64, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    (0..n).for_each(&mut f);
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let executor = ThreadPoolExecutor::new(WORKERS);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("a rayon pool");
    let threadpool = threadpool::ThreadPool::new(WORKERS);
    let look_aheads = [None, Some(16), Some(64), Some(256)];
    let (mut ours, mut theirs, mut slow) = (vec![], vec![], vec![]);
    let mut maps = vec![vec![]; look_aheads.len()];
    for _ in 0..REPS {
        ours.push(per_call(TRIPS, |i| {
            black_box(executor.submit(ident, i).result().expect("identity"));
        }));
        theirs.push(per_call(TRIPS, |i| {
            let (tx, rx) = bounded(1);
            rayon.spawn(move || {
                let _ = tx.send(ident(i));
            });
            black_box(rx.recv().expect("the task sends"));
        }));
        slow.push(per_call(TRIPS / 10, |i| {
            let (tx, rx) = bounded(1);
            threadpool.execute(move || {
                let _ = tx.send(ident(i));
            });
            black_box(rx.recv().expect("the task sends"));
        }));
        for (times, look_ahead) in maps.iter_mut().zip(look_aheads) {
            let start = Instant::now();
            let results = executor.map(ident, 0..ITEMS);
            let results = match look_ahead {
                Some(inputs) => results.buffer_size(inputs),
                None => results,
            };
            black_box(results.map(|r| r.expect("identity")).sum::<u64>());
            times.push(start.elapsed().as_secs_f64() * 1e6 / ITEMS as f64);
        }
    }
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    println!(
        "round trip, us: ours {:.2}, rayon spawn+channel {:.2}, threadpool execute+channel {:.2}; \
         per-repetition medians: ours/rayon {:.2}, threadpool/ours {:.1}",
        median(ours.clone()),
        median(theirs.clone()),
        median(slow.clone()),
        ratio(&ours, &theirs),
        ratio(&slow, &ours),
    );
    let maps: Vec<String> = look_aheads
        .iter()
        .zip(maps)
        .map(|(look_ahead, times)| match look_ahead {
            Some(inputs) => format!("buffer_size {inputs}: {:.3}", median(times)),
            None => format!("default: {:.3}", median(times)),
        })
        .collect();
    println!("map, us/item: {}", maps.join(", "));
}
