//! Layer: core. May use: `error`. [`Outcomes`]: the results of one `map`
//! chunk, stored compactly, for [`Map`](super::Map), which yields them;
//! the pools build them as their chunks finish.

use std::vec;

use crate::Error;

/// The results of a `map` chunk, one per input, in input order: the values
/// of the inputs that succeeded, and the errors of the others by position.
/// Most chunks have no error, and then a result costs the size of its value
/// rather than of a `Result<R, Error>` (48 bytes for a `u64`): the worker
/// writes, and the caller reads, a sixth of the bytes for small values.
#[derive(Debug)]
pub(crate) struct Outcomes<R> {
    values: Vec<R>,
    /// The failed inputs' errors, by increasing position.
    errors: Vec<(usize, Error)>,
}

impl<R> Outcomes<R> {
    /// The outcomes of a chunk of `len` inputs that failed as a whole (its
    /// worker died, say): that error for each input.
    pub(crate) fn failed(error: &Error, len: usize) -> Self {
        Self {
            values: Vec::new(),
            errors: (0..len).map(|position| (position, error.clone())).collect(),
        }
    }
}

impl<R> FromIterator<Result<R, Error>> for Outcomes<R> {
    fn from_iter<T: IntoIterator<Item = Result<R, Error>>>(results: T) -> Self {
        let results = results.into_iter();
        let mut outcomes = Self {
            values: Vec::with_capacity(results.size_hint().0),
            errors: Vec::new(),
        };
        for result in results {
            match result {
                Ok(value) => outcomes.values.push(value),
                Err(error) => {
                    let position = outcomes.values.len() + outcomes.errors.len();
                    outcomes.errors.push((position, error));
                }
            }
        }
        outcomes
    }
}

impl<R> IntoIterator for Outcomes<R> {
    type Item = Result<R, Error>;
    type IntoIter = IntoIter<R>;

    fn into_iter(self) -> IntoIter<R> {
        if self.errors.is_empty() {
            return IntoIter {
                values: self.values.into_iter(),
                mixed: Vec::new().into_iter(),
            };
        }
        // The rare chunk with errors is laid out in order once, so that a
        // chunk without any is a plain run of values.
        let len = self.values.len() + self.errors.len();
        let mut values = self.values.into_iter();
        let mut errors = self.errors.into_iter().peekable();
        let mixed = (0..len)
            .filter_map(|position| match errors.next_if(|(at, _)| *at == position) {
                Some((_, error)) => Some(Err(error)),
                None => values.next().map(Ok),
            })
            .collect();
        IntoIter {
            values: Vec::new().into_iter(),
            mixed: Vec::into_iter(mixed),
        }
    }
}

/// The results of an [`Outcomes`], one per input, in order.
#[derive(Debug)]
pub(crate) struct IntoIter<R> {
    /// The values of a chunk without errors: each step takes one, and
    /// checks nothing else.
    values: vec::IntoIter<R>,
    /// The results of a chunk with errors.
    mixed: vec::IntoIter<Result<R, Error>>,
}

impl<R> IntoIter<R> {
    /// The next value of a chunk without errors: the whole step for most
    /// results, which [`Map`](super::Map) inlines.
    #[inline]
    pub(crate) fn next_value(&mut self) -> Option<R> {
        self.values.next()
    }
}

impl<R> Default for IntoIter<R> {
    fn default() -> Self {
        Outcomes {
            values: Vec::new(),
            errors: Vec::new(),
        }
        .into_iter()
    }
}

impl<R> Iterator for IntoIter<R> {
    type Item = Result<R, Error>;

    #[inline]
    fn next(&mut self) -> Option<Result<R, Error>> {
        match self.next_value() {
            Some(value) => Some(Ok(value)),
            None => self.mixed.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.values.len() + self.mixed.len();
        (len, Some(len))
    }
}

impl<R> ExactSizeIterator for IntoIter<R> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(n: u8) -> Error {
        Error::InvalidArgument(n.to_string())
    }

    #[test]
    fn results_come_back_in_order_with_errors_in_place() {
        let results = vec![
            Err(error(0)),
            Ok(1),
            Ok(2),
            Err(error(3)),
            Err(error(4)),
            Ok(5),
        ];
        let outcomes: Outcomes<u8> = results.clone().into_iter().collect();
        let mut iter = outcomes.into_iter();
        assert_eq!(iter.len(), 6);
        iter.next();
        assert_eq!(iter.len(), 5);
        let mut back = vec![Err(error(0))];
        back.extend(iter);
        assert_eq!(back, results);
    }

    #[test]
    fn a_chunk_that_failed_as_a_whole_fails_each_input() {
        let outcomes = Outcomes::<u8>::failed(&Error::Cancelled, 3);
        let each: Vec<_> = outcomes.into_iter().collect();
        assert_eq!(each, vec![Err(Error::Cancelled); 3]);
    }

    #[test]
    fn an_empty_iterator_is_empty() {
        assert_eq!(IntoIter::<u8>::default().next(), None);
    }
}
