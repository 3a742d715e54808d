//! Opening channels from tests: the kinds, local ends to read and write, and running a command
//! to its end.

use session_client::{ChannelIo, Connection, Error, Relay};
use session_proto::WindowSize;
use session_proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

/// A command run on pipes, without a terminal.
pub fn exec(command: &str) -> OwnedOpenKind {
    OwnedOpenKind::Exec {
        command: owned_str(command).expect("a short command"),
        pty: None,
        env: OwnedEnv::default(),
    }
}

/// A command run on a terminal of `size`.
pub fn exec_on_terminal(command: &str, size: WindowSize) -> OwnedOpenKind {
    let pty = OwnedPty { term: owned_str("xterm").expect("a term"), size };
    OwnedOpenKind::Exec {
        command: owned_str(command).expect("a short command"),
        pty: Some(pty),
        env: OwnedEnv::default(),
    }
}

/// A port forward to `host:port` as the instance sees them.
pub fn forward_to(host: &str, port: u16) -> OwnedOpenKind {
    OwnedOpenKind::Forward { host: owned_str(host).expect("a short host"), port }
}

/// Sends `payload` through a port forward to `host:port` at the connection's instance, ends
/// its input, and returns what came back until the target closed: an echo server's answer is
/// the payload. A refused Open is the error.
pub async fn forward_echo(
    connection: &Connection,
    host: &str,
    port: u16,
    payload: &[u8],
) -> Result<Vec<u8>, Error> {
    let (io, mut input, mut output, _errors) = pipes();
    let send = async move {
        // A refused Open drops its ends: what is left unwritten has nowhere to go.
        let _ = input.write_all(payload).await;
        let _ = input.shutdown().await;
    };
    let mut back = Vec::new();
    let (outcome, (), read) =
        tokio::join!(connection.open(forward_to(host, port), io), send, output.read_to_end(&mut back));
    outcome?;
    read.expect("the forward's output ends with its channel");
    Ok(back)
}

/// A terminal of `cols` by `rows`.
pub fn size(cols: u16, rows: u16) -> WindowSize {
    WindowSize { cols, rows, width_px: 0, height_px: 0 }
}

/// Local ends for a channel: what the test writes to the first stream becomes the channel's
/// input, and the channel's stdout and stderr come out of the other two.
pub fn pipes() -> (ChannelIo, DuplexStream, DuplexStream, DuplexStream) {
    let (input, input_end) = tokio::io::duplex(64 * 1024);
    let (output, output_end) = tokio::io::duplex(64 * 1024);
    let (errors, errors_end) = tokio::io::duplex(64 * 1024);
    let io = ChannelIo {
        input: boxed_read(input_end),
        output: boxed_write(output),
        errors: boxed_write(errors),
        close_output: false,
    };
    (io, input, output_end, errors_end)
}

/// Local ends that send nothing and drop what comes, as a forward that only connects.
pub fn nothing() -> ChannelIo {
    ChannelIo {
        input: session_client::input_from(bytes::Bytes::new()),
        output: boxed_write(tokio::io::sink()),
        errors: boxed_write(tokio::io::sink()),
        close_output: true,
    }
}

fn boxed_read(r: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(r)
}

fn boxed_write(w: impl AsyncWrite + Send + Unpin + 'static) -> Box<dyn AsyncWrite + Send + Unpin> {
    Box::new(w)
}

/// What a command run to its end printed on stdout, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its standard output.
    pub stdout: String,
    /// Its exit code, as a shell reports it.
    pub code: i32,
}

/// Runs `command` without input on an open connection.
pub async fn run_on(connection: &Connection, command: &str) -> Result<Ran, Error> {
    let (io, input, mut stdout, _stderr) = pipes();
    drop(input);
    let mut text = String::new();
    // Read while it runs: a channel ends only once its output was written out.
    let (outcome, read) = tokio::join!(connection.open(exec(command), io), stdout.read_to_string(&mut text));
    read.expect("stdout ends with the channel");
    Ok(Ran { stdout: text, code: outcome?.exit_code() })
}

/// Runs `command` on `instance` as the holder of `relay`'s token, on a connection of its own.
pub async fn run(relay: &Relay, instance: &str, command: &str) -> Result<Ran, Error> {
    let connection = Connection::connect(relay, instance).await?;
    run_on(&connection, command).await
}

/// Reads `from` into `seen` until it contains `wanted`; panics with what came if it does not
/// within ten seconds (a test's bound on a hang, not a measure of speed).
pub async fn read_until<R: AsyncRead + Unpin>(from: &mut R, seen: &mut String, wanted: &str) {
    let deadline = tokio::time::Instant::now() + core::time::Duration::from_secs(10);
    while !seen.contains(wanted) {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, from.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            other => panic!("{wanted:?} never came ({other:?}); got {seen:?}"),
        }
    }
}
