//! The small value types that messages carry.

use core::fmt;

use crate::primitives::{Reader, Writer, varint_len};
use crate::{Error, MAX_TERM_LEN};

/// Which byte stream of a channel a Data frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Stream {
    /// Opener to acceptor: keystrokes, piped input, forwarded bytes.
    Stdin = 0,
    /// Acceptor to opener: output, forwarded bytes.
    Stdout = 1,
    /// Acceptor to opener: error output of an exec channel without a pty.
    Stderr = 2,
}

impl TryFrom<u8> for Stream {
    type Error = Error;

    /// The stream of a Data frame's first body byte; [`Error::InvalidValue`] for other values.
    fn try_from(code: u8) -> Result<Stream, Error> {
        match code {
            0 => Ok(Stream::Stdin),
            1 => Ok(Stream::Stdout),
            2 => Ok(Stream::Stderr),
            _ => Err(Error::InvalidValue),
        }
    }
}

impl Stream {
    /// The stream's code on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The stream's name in the spec and its vectors.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Declares a newtype over a wire code whose unknown values are valid, so that new codes can be
/// added without breaking old receivers.
macro_rules! open_code {
    (
        $(#[$meta:meta])* $name:ident($repr:ty) { $($(#[$cmeta:meta])* $konst:ident = $value:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$cmeta])* pub const $konst: $name = $name($value);)*

            /// The code's name in the spec, or `None` for a code this crate does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

open_code! {
    /// Why a connection ends, carried by `GoAway`. Unknown codes mean no more than
    /// `INTERNAL_ERROR`.
    ErrorCode(u32) {
        /// Graceful shutdown.
        NO_ERROR = 0,
        /// The peer broke a rule of the protocol.
        PROTOCOL_ERROR = 1,
        /// The peer sent a frame longer than announced.
        FRAME_TOO_LARGE = 2,
        /// The peer sent more data than its credit allowed.
        FLOW_CONTROL = 3,
        /// The peer's Hello announced a version this side does not speak.
        UNSUPPORTED_VERSION = 4,
        /// Nothing was heard from the peer within the keepalive timeout.
        KEEPALIVE_TIMEOUT = 5,
        /// A re-attach was refused: unknown token or offsets out of range.
        RESUME_REJECTED = 6,
        /// The peer is not allowed to connect.
        UNAUTHORIZED = 7,
        /// A fault of the sender's own.
        INTERNAL_ERROR = 8,
        /// A newer connection of the same peer replaced this one: a relay ends an agent's
        /// older connection when the same instance connects anew.
        SUPERSEDED = 9,
    }
}

open_code! {
    /// Why an Open was refused. Unknown codes mean no more than `UNSPECIFIED`.
    RefuseReason(u32) {
        /// No reason given.
        UNSPECIFIED = 0,
        /// Policy forbids it.
        PROHIBITED = 1,
        /// The receiver does not know the requested channel kind.
        UNKNOWN_KIND = 2,
        /// Too many channels, or another resource ran out.
        RESOURCE_SHORTAGE = 3,
        /// A port-forward target could not be reached.
        CONNECT_FAILED = 4,
        /// The shell or command could not be started.
        SPAWN_FAILED = 5,
        /// The target instance is not connected.
        UNAVAILABLE = 6,
    }
}

open_code! {
    /// Why a channel ended when its process's Exit does not say, carried by `Reason`. Unknown
    /// codes mean no more than `UNSPECIFIED`.
    EndReason(u32) {
        /// No reason given.
        UNSPECIFIED = 0,
        /// A TerminateSession request ended it (its owner or an administrator).
        TERMINATED = 1,
        /// The instance's agent lost its connection to the relay and did not come back in time.
        INSTANCE_LOST = 2,
        /// The instance's agent connected anew (it restarted): the sessions of its earlier
        /// connection ended.
        INSTANCE_REPLACED = 3,
        /// The instance's agent ended its connection (GoAway), for instance because it is
        /// stopping.
        INSTANCE_STOPPED = 4,
    }
}

open_code! {
    /// Why a file request failed, carried by a File Failed (spec 6.8). Unknown codes mean no
    /// more than `UNSPECIFIED`.
    FileError(u32) {
        /// No reason given.
        UNSPECIFIED = 0,
        /// The path, or a directory on the way to it, does not exist.
        NOT_FOUND = 1,
        /// The login user may not do this to the path.
        PERMISSION_DENIED = 2,
        /// The target exists and replacing it was not asked for.
        EXISTS = 3,
        /// A component of the path, or a listed path, is not a directory.
        NOT_A_DIRECTORY = 4,
        /// A Read or Write names a directory.
        IS_A_DIRECTORY = 5,
        /// The file system or the user's quota is full.
        NO_SPACE = 6,
        /// A removed directory is not empty.
        NOT_EMPTY = 7,
        /// An upload's bytes do not have the size or SHA-256 its End states.
        MISMATCH = 8,
        /// The file changed while it was read.
        CHANGED = 9,
        /// Another error of the host's.
        IO = 10,
    }
}

open_code! {
    /// A signal, by protocol code. These are not the host's numbers: an agent maps them by
    /// name. Codes 32..=255 are valid but unnamed; a receiver ignores a Signal it does not know.
    /// Code 0 is never valid.
    Signal(u8) {
        /// Hangup.
        HUP = 1,
        /// Interrupt (Ctrl-C).
        INT = 2,
        /// Quit (Ctrl-\).
        QUIT = 3,
        /// Illegal instruction.
        ILL = 4,
        /// Trace trap.
        TRAP = 5,
        /// Abort.
        ABRT = 6,
        /// Bus error.
        BUS = 7,
        /// Floating-point exception.
        FPE = 8,
        /// Kill.
        KILL = 9,
        /// User signal 1.
        USR1 = 10,
        /// Segmentation fault.
        SEGV = 11,
        /// User signal 2.
        USR2 = 12,
        /// Broken pipe.
        PIPE = 13,
        /// Alarm.
        ALRM = 14,
        /// Terminate.
        TERM = 15,
        /// Stack fault.
        STKFLT = 16,
        /// Child status changed.
        CHLD = 17,
        /// Continue.
        CONT = 18,
        /// Stop.
        STOP = 19,
        /// Terminal stop (Ctrl-Z).
        TSTP = 20,
        /// Background read from the terminal.
        TTIN = 21,
        /// Background write to the terminal.
        TTOU = 22,
        /// Urgent socket condition.
        URG = 23,
        /// CPU time limit exceeded.
        XCPU = 24,
        /// File size limit exceeded.
        XFSZ = 25,
        /// Virtual timer expired.
        VTALRM = 26,
        /// Profiling timer expired.
        PROF = 27,
        /// Window size changed.
        WINCH = 28,
        /// I/O possible.
        IO = 29,
        /// Power failure.
        PWR = 30,
        /// Bad system call.
        SYS = 31,
    }
}

impl Signal {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Signal, Error> {
        match r.u8()? {
            0 => Err(Error::InvalidValue),
            code => Ok(Signal(code)),
        }
    }

    pub(crate) fn encode(self, w: &mut Writer<'_>) -> Result<(), Error> {
        if self.0 == 0 {
            return Err(Error::InvalidValue);
        }
        w.u8(self.0)
    }
}

/// Capability flags announced in Hello. A feature is used only when both Hellos announce it;
/// unknown bits are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No capability.
    pub const NONE: Capabilities = Capabilities(0);
    /// The sender can re-attach a connection after the transport drops.
    pub const RESUME: Capabilities = Capabilities(1);
    /// The sender handles File channels: OpenKind File and the File message (spec 5.19).
    pub const FILES: Capabilities = Capabilities(2);
    /// The sender implements OpenOn (spec 5.21): channels opened for a named instance, which
    /// only the initiator sends.
    pub const FLEET: Capabilities = Capabilities(4);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// The flags both sides announced.
    pub const fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }
}

/// A terminal's size in character cells and pixels; 0 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WindowSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Width in pixels.
    pub width_px: u16,
    /// Height in pixels.
    pub height_px: u16,
}

impl WindowSize {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<WindowSize, Error> {
        Ok(WindowSize { cols: r.u16()?, rows: r.u16()?, width_px: r.u16()?, height_px: r.u16()? })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        for v in [self.cols, self.rows, self.width_px, self.height_px] {
            w.varint(u64::from(v))?;
        }
        Ok(())
    }

    pub(crate) const fn encoded_len(&self) -> usize {
        varint_len(self.cols as u64)
            + varint_len(self.rows as u64)
            + varint_len(self.width_px as u64)
            + varint_len(self.height_px as u64)
    }
}

/// A pseudo-terminal request: the terminal type and its initial size, so the remote side never
/// starts at a guessed size (kubernetes #47990).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Pty<'a> {
    /// `TERM`, at most [`MAX_TERM_LEN`] bytes without NUL; empty means the receiver's default.
    pub term: &'a str,
    /// Initial size.
    pub size: WindowSize,
}

impl<'a> Pty<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Pty<'a>, Error> {
        let term = r.str(MAX_TERM_LEN)?;
        check_no_nul(term)?;
        Ok(Pty { term, size: WindowSize::decode(r)? })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        // Length before content, in the decoder's order, so both report the same error.
        w.str(self.term, MAX_TERM_LEN)?;
        check_no_nul(self.term)?;
        self.size.encode(w)
    }

    pub(crate) const fn encoded_len(&self) -> usize {
        crate::primitives::bytes_len(self.term.len()) + self.size.encoded_len()
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// A signal ended it.
    Signal {
        /// The signal.
        signal: Signal,
        /// Whether it left a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<ExitStatus, Error> {
        match r.u32()? {
            0 => Ok(ExitStatus::Code(r.u32()?)),
            1 => Ok(ExitStatus::Signal { signal: Signal::decode(r)?, core_dumped: r.bool()? }),
            _ => Err(Error::InvalidValue),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match *self {
            ExitStatus::Code(code) => {
                w.varint(0)?;
                w.varint(u64::from(code))
            }
            ExitStatus::Signal { signal, core_dumped } => {
                w.varint(1)?;
                signal.encode(w)?;
                w.bool(core_dumped)
            }
        }
    }

    pub(crate) const fn encoded_len(&self) -> usize {
        match *self {
            ExitStatus::Code(code) => 1 + varint_len(code as u64),
            ExitStatus::Signal { .. } => 3,
        }
    }
}

/// Strings handed to exec, env or a resolver must not hide a NUL: C APIs would cut them there.
pub(crate) fn check_no_nul(s: &str) -> Result<(), Error> {
    if s.as_bytes().contains(&0) { Err(Error::InvalidValue) } else { Ok(()) }
}
