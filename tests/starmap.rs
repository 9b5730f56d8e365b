//! `ThreadPoolExecutor::starmap`: tuples of arguments spread over functions
//! and closures of one to six arguments, results in input order, with
//! `map`'s settings and per-item errors.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use concurrent_futures::{Error, ThreadPoolExecutor};

mod common;
use common::{Gates, PATIENCE, pass};

fn pangkat(basis: u64, eksponen: u32) -> u64 {
    basis.pow(eksponen)
}

fn enam(a: u8, b: u16, c: u32, d: u64, e: i8, f: String) -> String {
    format!("{a} {b} {c} {d} {e} {f}")
}

#[test]
fn one_argument_takes_one_element_tuples() {
    let executor = ThreadPoolExecutor::new(2);
    let results: Vec<_> = executor.starmap(|n: u32| n + 1, [(1,), (2,)]).collect();
    assert_eq!(results, [Ok(2), Ok(3)]);
}

#[test]
fn two_arguments_take_pairs_from_a_plain_function() {
    let executor = ThreadPoolExecutor::new(2);
    let results: Vec<_> = executor
        .starmap(pangkat, [(2, 10), (3, 3), (10, 0)])
        .collect();
    assert_eq!(results, [Ok(1024), Ok(27), Ok(1)]);
}

#[test]
fn three_arguments_from_a_capturing_closure() {
    let executor = ThreadPoolExecutor::new(2);
    let unit = String::from("cm");
    let volume = move |panjang: u32, lebar: u32, tinggi: u32| {
        format!("{} {unit}3", panjang * lebar * tinggi)
    };
    let results: Vec<_> = executor.starmap(volume, [(1, 2, 3), (2, 2, 2)]).collect();
    assert_eq!(results, [Ok("6 cm3".to_owned()), Ok("8 cm3".to_owned())]);
}

#[test]
fn six_arguments_of_six_types() {
    let executor = ThreadPoolExecutor::new(1);
    let results: Vec<_> = executor
        .starmap(enam, [(1, 2, 3, 4, -5, "enam".to_owned())])
        .collect();
    assert_eq!(results, [Ok("1 2 3 4 -5 enam".to_owned())]);
}

#[test]
fn results_keep_input_order_when_later_tasks_finish_first() {
    let executor = ThreadPoolExecutor::new(3);
    let gates = Gates::new(3);
    let receivers = Arc::clone(&gates.receivers);
    let (finished, finishes) = mpsc::channel();
    let finished = Mutex::new(finished);
    let task = move |gate: usize, value: &str| {
        assert!(pass(&receivers, gate), "gate {gate} dropped");
        finished.lock().unwrap().send(gate).unwrap();
        value.to_uppercase()
    };
    let inputs = [(0, "satu"), (1, "dua"), (2, "tiga")];
    thread::scope(|s| {
        let consumer = s.spawn(|| {
            executor
                .starmap(task, inputs)
                .timeout(PATIENCE)
                .collect::<Vec<_>>()
        });
        for gate in [2, 1, 0] {
            gates.open(gate);
            assert_eq!(finishes.recv_timeout(PATIENCE), Ok(gate));
        }
        let expected = ["SATU", "DUA", "TIGA"].map(|s| Ok(s.to_owned()));
        assert_eq!(consumer.join().unwrap(), expected);
    });
}

#[test]
fn map_settings_and_per_item_errors_carry_over() {
    let executor = ThreadPoolExecutor::new(2);
    let divide = |a: u32, b: u32| a / b;
    let inputs = (0..20).map(|n| (n, n % 5));
    let results: Vec<_> = executor
        .starmap(divide, inputs)
        .chunksize(3)
        .buffer_size(6)
        .timeout(PATIENCE)
        .collect();
    assert_eq!(results.len(), 20);
    for (n, result) in (0..20).zip(results) {
        match n % 5 {
            0 => assert!(
                matches!(&result, Err(Error::Panicked { message, .. }) if message.contains("divide by zero")),
                "item {n}: {result:?}"
            ),
            d => assert_eq!(result, Ok(n / d), "item {n}"),
        }
    }
}
