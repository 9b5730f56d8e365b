//! Layer: remote. May use: `error` and `remote::function`.
//! The messages between a front end and a serving side, and their layouts.
//! The messages between a front end and a serving side, and their layouts.
//!
//! Each message has a [`Kind`] (a transport carries it as it likes: a byte
//! of the process pool's frame header, an MPI tag) and a body. Bodies are
//! fixed little-endian layouts, except task arguments and outcomes, which
//! are the [`codec`](super::codec)'s.
//!
//! ```text
//! serving side                        front end
//!   ── Hello   (magic, version, fingerprint) ──▶   checks the fingerprint
//!   ◀── Welcome (magic, version, fingerprint, secret, initializer?,
//!                its argument) ──
//!   checks the fingerprint, runs the initializer
//!   ── Ready   (empty, or why it will not serve) ──▶
//!   ◀── Task    (call, tag, count, first item, arguments) ──
//!   ── Outcomes (one per argument run, with an [`Answer`] that says
//!                which items ran: before them for the process pool,
//!                after them for MPI) ──▶
//!   ◀── Put     (id, form, a shared value's bytes), before the first task
//!               that uses the value on this side; not answered
//!   ◀── Release (ids of shared values to drop); not answered
//!   ...                         until the transport says stop
//! ```
//!
//! Decoding never trusts a length: every read is bounds checked, and a bad
//! body is a [`Malformed`], never a panic. Nothing here is `unsafe`.

use super::function::{Fingerprint, FunctionRef, Secret};
use crate::Error;

/// Bumped whenever a message's layout changes.
pub(crate) const VERSION: u16 = 4;

const MAGIC: [u8; 4] = *b"CFut";

/// The kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Hello = 1,
    Welcome = 2,
    Ready = 3,
    Task = 4,
    Outcomes = 5,
    // 6 to 9 are the MPI transport's own tags.
    Put = 10,
    Release = 11,
}

impl Kind {
    /// The kind numbered `byte`, if there is one.
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        [
            Kind::Hello,
            Kind::Welcome,
            Kind::Ready,
            Kind::Task,
            Kind::Outcomes,
            Kind::Put,
            Kind::Release,
        ]
        .into_iter()
        .find(|kind| *kind as u8 == byte)
    }
}

/// Why a message's body does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl Malformed {
    /// This error as it reaches a task's future.
    pub(crate) fn into_error(self) -> Error {
        Error::Protocol(self.0)
    }
}

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// A bounds-checked reader over a message's body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(malformed("the message is shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.bytes(1)?[0])
    }

    fn preamble(&mut self) -> Result<(), Malformed> {
        if self.bytes(4)? != MAGIC {
            return Err(malformed("not a concurrent-futures message (bad magic)"));
        }
        let version = u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes"));
        if version != VERSION {
            return Err(malformed(format!(
                "protocol version {version}, expected {VERSION}"
            )));
        }
        Ok(())
    }

    fn fingerprint(&mut self) -> Result<Fingerprint, Malformed> {
        let mut words = [0; 5];
        for word in &mut words {
            *word = self.u64()?;
        }
        Ok(Fingerprint(words))
    }

    fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(malformed("the message has trailing bytes"))
        }
    }
}

fn put_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
}

fn put_fingerprint(out: &mut Vec<u8>, fingerprint: &Fingerprint) {
    for word in fingerprint.0 {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

/// The serving side's first words: who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) fingerprint: Fingerprint,
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(46);
        put_preamble(&mut out);
        put_fingerprint(&mut out, &self.fingerprint);
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self, Malformed> {
        let mut fields = Fields(body);
        fields.preamble()?;
        let fingerprint = fields.fingerprint()?;
        fields.end()?;
        Ok(Hello { fingerprint })
    }
}

/// The front end's answer: who it is, the key for task tags, the
/// initializer (named as [`Initializer`](super::function::Initializer) names
/// it). The initializer's encoded argument follows the encoded `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Welcome {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) secret: Secret,
    pub(crate) initializer: Option<FunctionRef>,
}

impl Welcome {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        put_preamble(&mut out);
        put_fingerprint(&mut out, &self.fingerprint);
        for word in self.secret.0 {
            out.extend_from_slice(&word.to_le_bytes());
        }
        if let Some(call) = self.initializer {
            out.push(1);
            out.extend_from_slice(&call.trampoline.to_le_bytes());
            out.extend_from_slice(&call.function.to_le_bytes());
        } else {
            out.push(0);
        }
        out
    }

    /// Splits a welcome message's body into the `Welcome` and its
    /// initializer's encoded argument (nothing without an initializer).
    pub(crate) fn decode(body: &[u8]) -> Result<(Self, &[u8]), Malformed> {
        let mut fields = Fields(body);
        fields.preamble()?;
        let fingerprint = fields.fingerprint()?;
        let secret = Secret([fields.u64()?, fields.u64()?]);
        let initializer = match fields.u8()? {
            0 => None,
            1 => Some(FunctionRef {
                trampoline: fields.u64()?,
                function: fields.u64()?,
            }),
            other => return Err(malformed(format!("bad initializer flag {other}"))),
        };
        if initializer.is_none() {
            fields.end()?;
        }
        let welcome = Welcome {
            fingerprint,
            secret,
            initializer,
        };
        Ok((welcome, fields.0))
    }
}

/// The head of a task message; the encoded arguments follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) function: FunctionRef,
    pub(crate) tag: u64,
    pub(crate) count: u32,
    /// The number of the message's first item on its serving side (the
    /// process pool numbers the items it sends a child; see its `gate`);
    /// the others follow it. 0 where nothing numbers them (MPI).
    pub(crate) first: u32,
    /// Feature `tracing`: capture the task's events, and at which level
    /// (see `remote/trace.rs`); 0: do not.
    #[cfg(feature = "tracing")]
    pub(crate) trace: u8,
}

impl TaskHeader {
    pub(crate) const LEN: usize = 32 + cfg!(feature = "tracing") as usize;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.function.trampoline.to_le_bytes());
        out[8..16].copy_from_slice(&self.function.function.to_le_bytes());
        out[16..24].copy_from_slice(&self.tag.to_le_bytes());
        out[24..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..32].copy_from_slice(&self.first.to_le_bytes());
        #[cfg(feature = "tracing")]
        {
            out[32] = self.trace;
        }
        out
    }

    /// Splits a task message's body into its header and its arguments.
    pub(crate) fn decode(body: &[u8]) -> Result<(Self, &[u8]), Malformed> {
        let mut fields = Fields(body);
        let header = TaskHeader {
            function: FunctionRef {
                trampoline: fields.u64()?,
                function: fields.u64()?,
            },
            tag: fields.u64()?,
            count: fields.u32()?,
            first: fields.u32()?,
            #[cfg(feature = "tracing")]
            trace: fields.u8()?,
        };
        Ok((header, fields.0))
    }
}

/// What a serving side says with a task message's outcomes (a process
/// pool's child before them, an MPI rank after them): which message it
/// answers, and how many of its items ran. The items after those were
/// taken back by the front end before they started, and were not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The number of the message's first item, as its header said.
    pub(crate) first: u32,
    /// How many items ran, from the first: one outcome each follows.
    pub(crate) done: u32,
    /// How many bytes of the encoded arguments those items took: the
    /// arguments of the items not run start there.
    pub(crate) consumed: u64,
}

impl Answer {
    pub(crate) const LEN: usize = 16;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..4].copy_from_slice(&self.first.to_le_bytes());
        out[4..8].copy_from_slice(&self.done.to_le_bytes());
        out[8..].copy_from_slice(&self.consumed.to_le_bytes());
        out
    }

    /// Splits an outcomes message's body into its answer and its outcomes.
    pub(crate) fn decode(body: &[u8]) -> Result<(Self, &[u8]), Malformed> {
        let mut fields = Fields(body);
        let answer = Answer {
            first: fields.u32()?,
            done: fields.u32()?,
            consumed: fields.u64()?,
        };
        Ok((answer, fields.0))
    }
}

/// The `Ready` body: empty when the serving side is ready, else why it is not.
pub(crate) fn decode_ready(body: &[u8]) -> Result<Result<(), String>, Malformed> {
    if body.is_empty() {
        return Ok(Ok(()));
    }
    match std::str::from_utf8(body) {
        Ok(reason) => Ok(Err(reason.to_owned())),
        Err(_) => Err(malformed("the ready message is not UTF-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_messages_round_trip() {
        let fingerprint = Fingerprint([1, 2, 3, 4, 5]);
        let hello = Hello { fingerprint };
        assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);
        let welcome = Welcome {
            fingerprint,
            secret: Secret([7, 8]),
            initializer: Some(FunctionRef {
                trampoline: 9,
                function: 10,
            }),
        };
        let body = [&welcome.encode()[..], b"arg"].concat();
        assert_eq!(
            Welcome::decode(&body).unwrap(),
            (welcome.clone(), &b"arg"[..])
        );
        let alone = Welcome {
            initializer: None,
            ..welcome
        };
        assert_eq!(
            Welcome::decode(&alone.encode()).unwrap(),
            (alone.clone(), &[][..])
        );
        assert!(Welcome::decode(&[&alone.encode()[..], b"!"].concat()).is_err());
        let header = TaskHeader {
            function: FunctionRef {
                trampoline: 1,
                function: 2,
            },
            tag: 3,
            count: 4,
            first: u32::MAX,
            #[cfg(feature = "tracing")]
            trace: 5,
        };
        let body = [&header.encode()[..], b"args"].concat();
        assert_eq!(TaskHeader::decode(&body).unwrap(), (header, &b"args"[..]));
        let answer = Answer {
            first: 7,
            done: 2,
            consumed: 1 << 40,
        };
        let body = [&answer.encode()[..], b"outcomes"].concat();
        assert_eq!(Answer::decode(&body).unwrap(), (answer, &b"outcomes"[..]));
        assert!(Answer::decode(&body[..Answer::LEN - 1]).is_err());
    }

    #[test]
    fn handshakes_check_magic_version_and_length() {
        let good = Hello {
            fingerprint: Fingerprint([0; 5]),
        }
        .encode();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(Hello::decode(&bad_magic).is_err());
        let mut bad_version = good.clone();
        bad_version[4] = 0xFF;
        assert!(matches!(Hello::decode(&bad_version), Err(Malformed(m)) if m.contains("version")));
        for cut in 0..good.len() {
            assert!(Hello::decode(&good[..cut]).is_err());
        }
        assert!(Hello::decode(&[&good[..], b"!"].concat()).is_err());
    }
}
