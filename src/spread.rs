//! Layer: core. May use: std only.
//! [`Spread`]: calling a function of several arguments with one tuple.

/// A function of several arguments, called with one tuple of them: what
/// [`ThreadPoolExecutor::starmap`](crate::ThreadPoolExecutor::starmap) takes,
/// as Python's `itertools.starmap` calls `f(*args)`.
///
/// Every `Fn` of one to six arguments is one, with the tuple of its argument
/// types as `Args`: `Fn(A) -> R` takes `(A,)`, `Fn(A, B) -> R` takes
/// `(A, B)`, and so on.
///
/// ```
/// use concurrent_futures::Spread;
///
/// fn price(item: &str, quantity: u32, cents_each: u32) -> String {
///     format!("{quantity} {item}: {} cents", quantity * cents_each)
/// }
///
/// assert_eq!(price.call_with(("coffee", 2, 350)), "2 coffee: 700 cents");
/// ```
pub trait Spread<Args> {
    /// What the function returns.
    type Output;

    /// Calls the function with the tuple's elements as its arguments.
    fn call_with(&self, args: Args) -> Self::Output;
}

/// Implements [`Spread`] for the functions of one arity, given as
/// `argument Type` pairs.
macro_rules! spread {
    ($($arg:ident $type:ident),+) => {
        impl<F, $($type,)+ R> Spread<($($type,)+)> for F
        where
            F: Fn($($type),+) -> R,
        {
            type Output = R;

            fn call_with(&self, ($($arg,)+): ($($type,)+)) -> R {
                self($($arg),+)
            }
        }
    };
}

spread!(a A);
spread!(a A, b B);
spread!(a A, b B, c C);
spread!(a A, b B, c C, d D);
spread!(a A, b B, c C, d D, e E);
spread!(a A, b B, c C, d D, e E, f G);
