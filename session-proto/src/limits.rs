//! Every limit of the wire format, in one place. The spec's section 2.2 lists the same public
//! names and values.

/// Bytes in every frame header: 3 of body length, 1 of type, 2 of channel.
pub const HEADER_LEN: usize = 6;
/// Largest body the 24-bit length field can describe.
pub const MAX_BODY_LEN: usize = 0xff_ffff;
/// Every receiver accepts bodies of this length; a Hello may not announce less. Before the
/// peer's Hello arrives a sender sends no longer body.
pub const MIN_MAX_FRAME: usize = 16_384;
/// Recommended maximum body length to announce.
pub const DEFAULT_MAX_FRAME: usize = 131_072;
/// Recommended initial credit per channel and direction.
pub const DEFAULT_INITIAL_WINDOW: u32 = 262_144;
/// Recommended keepalive interval.
pub const DEFAULT_KEEPALIVE_MS: u32 = 15_000;
/// Largest send window a channel may reach: credit beyond it is a flow-control error.
pub const MAX_WINDOW: u32 = u32::MAX;
/// A peer that has heard nothing for this many of its own keepalive intervals declares the
/// other lost.
pub const KEEPALIVE_TIMEOUT_FACTOR: u32 = 3;
/// Longest a receiver may hold back the acknowledgement of session frames it received (spec
/// 7.4), in milliseconds, when it has nothing of its own to send them with.
pub const MAX_ACK_DELAY_MS: u64 = 20;
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Longest resume token, in bytes.
pub const MAX_TOKEN_LEN: usize = 32;
/// Longest human-readable message in `GoAway`, `Refuse` and `Reason`, in bytes of UTF-8.
pub const MAX_MESSAGE_LEN: usize = 256;
/// Longest terminal type (`TERM`), in bytes.
pub const MAX_TERM_LEN: usize = 64;
/// Longest command of an exec channel, in bytes.
pub const MAX_COMMAND_LEN: usize = 4096;
/// Longest host name or address of a port-forward channel, in bytes (a DNS name's limit).
pub const MAX_HOST_LEN: usize = 255;
/// Most environment variables in one Open.
pub const MAX_ENV: usize = 16;
/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME_LEN: usize = 64;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_LEN: usize = 256;

/// Longest file path, Entry name or symbolic link target, in bytes (a Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Bytes of a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;
/// Longest Entry record's body in a listing: name and target at [`MAX_PATH_LEN`], every number
/// at its longest varint.
pub const MAX_ENTRY_LEN: usize = (2 + MAX_PATH_LEN) + 1 + 10 + 2 + 10 + (2 + MAX_PATH_LEN);
/// Longest session id a relay names in a Session message.
pub const MAX_SESSION_ID_LEN: usize = 64;
/// Longest instance name an OpenOn carries (spec 5.21): the instance-name syntax of 11.1.
pub const MAX_INSTANCE_LEN: usize = 64;

/// Largest encoding of one environment variable: two length-prefixed strings.
const MAX_ENV_VAR_ENCODED_LEN: usize = 1 + MAX_ENV_NAME_LEN + 2 + MAX_ENV_VALUE_LEN;
/// Largest encoding of an environment list, count excluded.
pub(crate) const MAX_ENV_ENCODED_LEN: usize = MAX_ENV * MAX_ENV_VAR_ENCODED_LEN;
/// Largest encoding of a pty request: TERM and four 16-bit varints.
const MAX_PTY_LEN: usize = 1 + MAX_TERM_LEN + 4 * 3;
/// Largest Open body of a defined kind: an Exec with every field full.
const MAX_OPEN_LEN: usize = 1 + (2 + MAX_COMMAND_LEN) + (1 + MAX_PTY_LEN) + (1 + MAX_ENV_ENCODED_LEN);
/// Largest body of any message but Data and Extension: an Exec OpenOn with every field full, the
/// longest instance name (its length is one varint byte) before the Open's body.
pub const MAX_CONTROL_BODY_LEN: usize = (1 + MAX_INSTANCE_LEN) + MAX_OPEN_LEN;

// Control frames always fit the smallest maximum a peer may announce, so a sender never has
// to split or drop one.
const _: () = assert!(MAX_CONTROL_BODY_LEN <= MIN_MAX_FRAME);
/// The largest File Open body: a Rename of two longest paths (kind, request, paths, overwrite).
const MAX_FILE_OPEN_LEN: usize = 1 + 1 + 2 * (2 + MAX_PATH_LEN) + 1;
// No larger than an Exec Open, so a File Open, and a File OpenOn, is a control frame too.
const _: () = assert!(MAX_FILE_OPEN_LEN <= MAX_OPEN_LEN);
// An instance name's length is a one-byte varint, as MAX_CONTROL_BODY_LEN counts it.
const _: () = assert!(MAX_INSTANCE_LEN < 128);
const _: () = assert!(DEFAULT_MAX_FRAME >= MIN_MAX_FRAME && DEFAULT_MAX_FRAME <= MAX_BODY_LEN);
// An environment list's count is one byte, which `OwnedEnv` relies on.
const _: () = assert!(MAX_ENV < 128);
