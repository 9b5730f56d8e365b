//! Layer: core. May use: `error` and `future`.
//! [`Future::flat_result`]: one `Result` for a task that returns one.

use crate::{Error, Future};

impl<T, E: From<Error>> Future<Result<T, E>> {
    /// Waits like [`result`](Future::result), for a task that returns a
    /// `Result` of its own, and puts both kinds of failure in one `Err`: the
    /// task's own error, and the pool's ([`Error`]: a panic, a cancel, a
    /// dead worker), converted with `From`. `result()` would give
    /// `Result<Result<T, E>, Error>`, which takes three match arms; this is
    /// Python's one `except Exception as exc`, which catches both.
    ///
    /// `E` can be `String` (the crate converts its [`Error`] to its text),
    /// an error enum of yours with a `From<concurrent_futures::Error>`, or,
    /// on the thread pool, which need not send errors anywhere,
    /// `Box<dyn std::error::Error + Send + Sync>`.
    ///
    /// Python's `future_to_url` loop with a timeout reads the same way:
    /// `?` passes the timeout up (Python's `TimeoutError` leaving the loop),
    /// and one `match` handles each page:
    ///
    /// ```
    /// use concurrent_futures::{as_completed, Error, ThreadPoolExecutor};
    /// use std::time::Duration;
    ///
    /// fn load_url(url: &str) -> Result<usize, String> {
    ///     // A real program would fetch the page; its length stands for it here.
    ///     url.strip_prefix("https://").map(str::len).ok_or(format!("not https: {url}"))
    /// }
    ///
    /// fn main() -> Result<(), Error> {
    ///     let executor = ThreadPoolExecutor::new(5);
    ///     let urls = ["https://www.python.org/", "ftp://example.com/"];
    ///     let future_to_url = urls.map(|url| (url, executor.submit(load_url, url)));
    ///     let mut lines = Vec::new();
    ///     // for future in as_completed(future_to_url, timeout=60):
    ///     for done in as_completed(&future_to_url).timeout(Duration::from_secs(60)) {
    ///         let (url, future) = done?; // raises TimeoutError
    ///         match future.flat_result() {
    ///             Ok(bytes) => lines.push(format!("{url} page is {bytes} bytes")),
    ///             Err(exc) => lines.push(format!("{url} generated an exception: {exc}")),
    ///         }
    ///     }
    ///     lines.sort(); // they complete in any order
    ///     assert_eq!(lines, [
    ///         "ftp://example.com/ generated an exception: not https: ftp://example.com/",
    ///         "https://www.python.org/ page is 15 bytes",
    ///     ]);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// Like `result()`, it hands the value over once.
    pub fn flat_result(&self) -> Result<T, E> {
        self.result().unwrap_or_else(|error| Err(E::from(error)))
    }
}
