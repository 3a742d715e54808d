//! The bounded environment list of an Open.

use core::fmt;

use crate::primitives::{Reader, Writer, bytes_len};
use crate::types::check_no_nul;
use crate::{Error, MAX_ENV, MAX_ENV_NAME_LEN, MAX_ENV_VALUE_LEN};

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EnvVar<'a> {
    /// 1 to [`MAX_ENV_NAME_LEN`] bytes, without `=` or NUL.
    pub name: &'a str,
    /// At most [`MAX_ENV_VALUE_LEN`] bytes, without NUL.
    pub value: &'a str,
}

impl<'a> EnvVar<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<EnvVar<'a>, Error> {
        let name = r.str(MAX_ENV_NAME_LEN)?;
        check_name(name)?;
        let value = r.str(MAX_ENV_VALUE_LEN)?;
        check_no_nul(value)?;
        Ok(EnvVar { name, value })
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        // Each field's length before its content, in the decoder's order.
        w.str(self.name, MAX_ENV_NAME_LEN)?;
        check_name(self.name)?;
        w.str(self.value, MAX_ENV_VALUE_LEN)?;
        check_no_nul(self.value)
    }

    const fn encoded_len(&self) -> usize {
        bytes_len(self.name.len()) + bytes_len(self.value.len())
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.as_bytes().contains(&b'=') {
        return Err(Error::InvalidValue);
    }
    check_no_nul(name)
}

/// At most [`MAX_ENV`] variables.
///
/// A decoded list borrows its validated encoding from the frame and decodes entries as it is
/// iterated, so decoding costs no copy and no storage; a list to send borrows the caller's
/// slice. Both compare equal when they hold the same variables in the same order.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    repr: Repr<'a>,
}

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// Entries exactly as on the wire (count excluded), already validated.
    Encoded {
        count: usize,
        bytes: &'a [u8],
    },
    Vars(&'a [EnvVar<'a>]),
}

impl<'a> Env<'a> {
    /// The empty list.
    pub const EMPTY: Env<'static> = Env { repr: Repr::Vars(&[]) };

    /// A list to send. Its bounds are checked when it is encoded.
    pub const fn new(vars: &'a [EnvVar<'a>]) -> Env<'a> {
        Env { repr: Repr::Vars(vars) }
    }

    /// Number of variables.
    pub const fn len(&self) -> usize {
        match self.repr {
            Repr::Encoded { count, .. } => count,
            Repr::Vars(vars) => vars.len(),
        }
    }

    /// Whether the list is empty.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The variables, in order.
    pub fn iter(&self) -> EnvIter<'a> {
        match self.repr {
            Repr::Encoded { count, bytes } => {
                EnvIter { repr: IterRepr::Encoded { left: count, reader: Reader::new(bytes) } }
            }
            Repr::Vars(vars) => EnvIter { repr: IterRepr::Vars(vars.iter()) },
        }
    }

    /// Reads and validates a list, keeping its bytes borrowed.
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Env<'a>, Error> {
        let count = r.len(MAX_ENV)?;
        let start = r.remaining();
        for _ in 0..count {
            EnvVar::decode(r)?;
        }
        let used = start.len() - r.remaining().len();
        let bytes = start.get(..used).ok_or(Error::Truncated)?;
        Ok(Env { repr: Repr::Encoded { count, bytes } })
    }

    /// The validated encoding of the entries (count excluded), for owned copies.
    pub(crate) fn encoded_entries(&self) -> Option<&'a [u8]> {
        match self.repr {
            Repr::Encoded { bytes, .. } => Some(bytes),
            Repr::Vars(_) => None,
        }
    }

    /// Rebuilds a list from entries that [`Env::decode`] validated earlier.
    pub(crate) const fn from_validated(count: usize, bytes: &'a [u8]) -> Env<'a> {
        Env { repr: Repr::Encoded { count, bytes } }
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.len(self.len(), MAX_ENV)?;
        match self.repr {
            // Already validated by `decode`: copy as is.
            Repr::Encoded { bytes, .. } => w.put(bytes),
            Repr::Vars(vars) => vars.iter().try_for_each(|var| var.encode(w)),
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        let entries = match self.repr {
            Repr::Encoded { bytes, .. } => bytes.len(),
            Repr::Vars(vars) => vars.iter().map(EnvVar::encoded_len).sum(),
        };
        crate::primitives::varint_len(self.len() as u64) + entries
    }
}

impl Default for Env<'_> {
    fn default() -> Self {
        Env::EMPTY
    }
}

impl<'a> IntoIterator for &Env<'a> {
    type Item = EnvVar<'a>;
    type IntoIter = EnvIter<'a>;

    fn into_iter(self) -> EnvIter<'a> {
        self.iter()
    }
}

impl PartialEq for Env<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Env<'_> {}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Env<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Env({=usize} vars)", self.len());
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Env<'a> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        // A slice of structs cannot be borrowed from fuzz input, so arbitrary lists come from
        // arbitrary encodings; one that does not validate becomes the empty list.
        let bytes: &'a [u8] = u.arbitrary()?;
        Ok(Env::decode(&mut Reader::new(bytes)).unwrap_or(Env::EMPTY))
    }
}

/// Iterator over an [`Env`].
#[derive(Debug, Clone)]
pub struct EnvIter<'a> {
    repr: IterRepr<'a>,
}

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Encoded { left: usize, reader: Reader<'a> },
    Vars(core::slice::Iter<'a, EnvVar<'a>>),
}

impl<'a> Iterator for EnvIter<'a> {
    type Item = EnvVar<'a>;

    fn next(&mut self) -> Option<EnvVar<'a>> {
        match &mut self.repr {
            IterRepr::Encoded { left, reader } => {
                *left = left.checked_sub(1)?;
                // Decoding again re-checks what `Env::decode` checked; env lists are short and
                // read once per channel, so keeping no second, unchecked path is worth it. It
                // cannot fail; if it somehow did, ending the iteration is the safe answer.
                EnvVar::decode(reader).ok()
            }
            IterRepr::Vars(vars) => vars.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = match &self.repr {
            IterRepr::Encoded { left, .. } => *left,
            IterRepr::Vars(vars) => vars.len(),
        };
        (left, Some(left))
    }
}
