//! A local port forwarded to a host and port as the instance sees them.

use session_proto::owned::{OwnedOpenKind, owned_str};

use crate::{ChannelIo, Connection, Error};

/// Forwards each connection accepted on `listener` to `host:port` as the instance sees them,
/// one channel per connection, until accepting fails.
pub async fn forward(
    connection: &Connection,
    listener: tokio::net::TcpListener,
    host: &str,
    port: u16,
) -> Result<(), Error> {
    let host = owned_str(host).map_err(|_| Error::Invalid(format!("{host}: too long a host name")))?;
    loop {
        let (stream, peer) = listener
            .accept()
            .await
            .map_err(|error| Error::Io { what: "accepting a forwarded connection".into(), error })?;
        let _ = stream.set_nodelay(true);
        let (connection, host) = (connection.clone(), host.clone());
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let io = ChannelIo {
                input: Box::new(read),
                output: Box::new(write),
                errors: Box::new(tokio::io::sink()),
                close_output: true,
            };
            if let Err(e) = connection.open(OwnedOpenKind::Forward { host, port }, io).await {
                tracing::warn!(%peer, error = %e, "forward failed");
            }
        });
    }
}
