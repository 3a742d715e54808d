//! A local port forwarded to a host and port as the instance sees them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_proto::owned::{OwnedOpenKind, owned_str};

use crate::{ChannelIo, Connection, Error};

/// What a forward reports about each connection it could not carry: the local peer, and why
/// (the instance could not connect to the target, a policy or the account's switch refused).
pub type Failures = Arc<dyn Fn(SocketAddr, &Error) + Send + Sync>;

/// Forwards each connection accepted on `listener` to `host:port` as the instance sees them,
/// one channel per connection, telling `failures` of each one that fails. Returns, with why,
/// once the connection to the relay is lost: a forward that can carry nothing more must not
/// go on accepting.
pub async fn forward(
    connection: &Connection,
    listener: tokio::net::TcpListener,
    host: &str,
    port: u16,
    failures: Failures,
) -> Error {
    let kind = match owned_str(host) {
        Ok(host) => OwnedOpenKind::Forward { host, port },
        Err(_) => return Error::Invalid(format!("{host}: too long a host name")),
    };
    let accepting = tokio::spawn(accept(connection.clone(), listener, kind, failures));
    let lost = connection.closed().await;
    accepting.abort();
    lost
}

async fn accept(
    connection: Connection,
    listener: tokio::net::TcpListener,
    kind: OwnedOpenKind,
    failures: Failures,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, say: the listener itself is fine; wait a little.
                let error = Error::Io { what: "accepting a forwarded connection".into(), error };
                failures(listener.local_addr().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))), &error);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (connection, kind, failures) = (connection.clone(), kind.clone(), Arc::clone(&failures));
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let io = ChannelIo {
                input: Box::new(read),
                output: Box::new(write),
                errors: Box::new(tokio::io::sink()),
                close_output: true,
            };
            if let Err(e) = connection.open(kind, io).await {
                failures(peer, &e);
            }
        });
    }
}
