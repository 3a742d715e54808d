//! Why a file operation failed: a code the client can act on, and a message for a person that
//! says what and where (`permission denied: /etc/shadow`).

use std::io;

use nix::errno::Errno;

/// The longest message a failure carries, in bytes: it travels in one small record, and the
/// protocol's refusal has room for little more.
pub(crate) const MAX_MESSAGE: usize = 256;

/// What went wrong, as the client is told it (the numbers are the wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    NotFound,
    PermissionDenied,
    Exists,
    NotADirectory,
    IsADirectory,
    NoSpace,
    NotEmpty,
    /// An upload's size or SHA-256 is not what the client said it sent.
    Mismatch,
    /// A file changed while it was being read.
    Changed,
    /// Anything else.
    Io,
}

impl Code {
    pub(crate) fn to_u32(self) -> u32 {
        match self {
            Code::NotFound => 1,
            Code::PermissionDenied => 2,
            Code::Exists => 3,
            Code::NotADirectory => 4,
            Code::IsADirectory => 5,
            Code::NoSpace => 6,
            Code::NotEmpty => 7,
            Code::Mismatch => 8,
            Code::Changed => 9,
            Code::Io => 10,
        }
    }

    /// The code for a wire value; one this agent does not know is [`Code::Io`].
    pub(crate) fn from_u32(value: u32) -> Code {
        match value {
            1 => Code::NotFound,
            2 => Code::PermissionDenied,
            3 => Code::Exists,
            4 => Code::NotADirectory,
            5 => Code::IsADirectory,
            6 => Code::NoSpace,
            7 => Code::NotEmpty,
            8 => Code::Mismatch,
            9 => Code::Changed,
            _ => Code::Io,
        }
    }

    /// The code's name, as the spec writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::NotFound => "NOT_FOUND",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::Exists => "EXISTS",
            Code::NotADirectory => "NOT_A_DIRECTORY",
            Code::IsADirectory => "IS_A_DIRECTORY",
            Code::NoSpace => "NO_SPACE",
            Code::NotEmpty => "NOT_EMPTY",
            Code::Mismatch => "MISMATCH",
            Code::Changed => "CHANGED",
            Code::Io => "IO",
        }
    }

    /// What a message says before the path.
    fn words(self) -> &'static str {
        match self {
            Code::NotFound => "not found",
            Code::PermissionDenied => "permission denied",
            Code::Exists => "already exists",
            Code::NotADirectory => "not a directory",
            Code::IsADirectory => "is a directory",
            Code::NoSpace => "no space left",
            Code::NotEmpty => "directory not empty",
            Code::Mismatch => "size or SHA-256 differs from what was sent",
            Code::Changed => "changed while it was read",
            Code::Io => "input/output error",
        }
    }

    /// The code for what the system said: errno first, as it is the most precise; the kind for
    /// errors std makes up itself.
    pub(crate) fn of(error: &io::Error) -> Code {
        if let Some(raw) = error.raw_os_error() {
            return match Errno::from_raw(raw) {
                Errno::ENOENT => Code::NotFound,
                Errno::EACCES | Errno::EPERM => Code::PermissionDenied,
                Errno::EEXIST => Code::Exists,
                Errno::ENOTDIR => Code::NotADirectory,
                Errno::EISDIR => Code::IsADirectory,
                Errno::ENOSPC | Errno::EDQUOT => Code::NoSpace,
                Errno::ENOTEMPTY => Code::NotEmpty,
                _ => Code::Io,
            };
        }
        match error.kind() {
            io::ErrorKind::NotFound => Code::NotFound,
            io::ErrorKind::PermissionDenied => Code::PermissionDenied,
            io::ErrorKind::AlreadyExists => Code::Exists,
            io::ErrorKind::NotADirectory => Code::NotADirectory,
            io::ErrorKind::IsADirectory => Code::IsADirectory,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Code::NoSpace,
            io::ErrorKind::DirectoryNotEmpty => Code::NotEmpty,
            _ => Code::Io,
        }
    }
}

impl core::fmt::Display for Code {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed operation: what the worker sends in FAILED, and what the agent reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    /// At most [`MAX_MESSAGE`] bytes.
    pub(crate) message: String,
}

impl Failure {
    /// `code` at `path`, in the code's own words.
    pub(crate) fn at(code: Code, path: &[u8]) -> Failure {
        Failure::new(code, format!("{}: {}", code.words(), String::from_utf8_lossy(path)))
    }

    /// What the system said about `path`. An error without a code of its own keeps the system's
    /// words (`too many symbolic links encountered: /tmp/x`).
    pub(crate) fn io(error: &io::Error, path: &[u8]) -> Failure {
        let code = Code::of(error);
        if code != Code::Io {
            return Failure::at(code, path);
        }
        let words = match error.raw_os_error() {
            Some(raw) => Errno::from_raw(raw).desc().to_lowercase(),
            None => error.to_string(),
        };
        Failure::new(code, format!("{words}: {}", String::from_utf8_lossy(path)))
    }

    /// A failure with a message of its own, cut to [`MAX_MESSAGE`] bytes on a character
    /// boundary (a long path loses its end, the code still says what happened).
    pub(crate) fn new(code: Code, message: String) -> Failure {
        Failure { code, message: clip(message) }
    }
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

fn clip(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_codes_and_messages_name_the_path() {
        let cases = [
            (Errno::ENOENT, Code::NotFound),
            (Errno::EACCES, Code::PermissionDenied),
            (Errno::EPERM, Code::PermissionDenied),
            (Errno::EEXIST, Code::Exists),
            (Errno::ENOTDIR, Code::NotADirectory),
            (Errno::EISDIR, Code::IsADirectory),
            (Errno::ENOSPC, Code::NoSpace),
            (Errno::EDQUOT, Code::NoSpace),
            (Errno::ENOTEMPTY, Code::NotEmpty),
            (Errno::ELOOP, Code::Io),
        ];
        for (errno, code) in cases {
            let error = io::Error::from_raw_os_error(errno as i32);
            assert_eq!(Code::of(&error), code, "{errno}");
            assert_eq!(Code::from_u32(code.to_u32()), code);
        }
        let denied = Failure::io(&io::Error::from_raw_os_error(Errno::EACCES as i32), b"/etc/shadow");
        assert_eq!(denied.message, "permission denied: /etc/shadow");
        let lost = Failure::io(&io::Error::from_raw_os_error(Errno::ELOOP as i32), b"/a/\xffb");
        // In nix's words, lower-cased.
        assert_eq!(lost.message, "too many symbolic links encountered: /a/\u{fffd}b");
        assert_eq!(Code::from_u32(99), Code::Io);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let path = "é".repeat(300);
        let failure = Failure::at(Code::NotFound, path.as_bytes());
        assert!(failure.message.len() <= MAX_MESSAGE);
        assert!(failure.message.starts_with("not found: é"));
    }
}
