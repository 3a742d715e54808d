//! What the task of a client's connection and the task of an agent's connection tell each other
//! about the channels they couple, and the per-channel queue that keeps each direction in order.

use std::collections::VecDeque;

use session_codec::Frame;
use session_codec::link::{Link, Outbound, Transport};
use session_codec::proto::connection::{CommandError, Connection};
use session_codec::proto::owned::OwnedOpenKind;
use session_codec::proto::{ExitStatus, RefuseReason, Signal, WindowSize};
use tokio::sync::mpsc;

/// One coupled channel, named the same in both tasks (each side's channel ids are its own).
pub(crate) type RouteId = u64;

/// Sends to the task of a client's connection.
pub(crate) type ClientTx = mpsc::UnboundedSender<ToClient>;

/// From a client's task to the agent's.
///
/// The queue is unbounded in count but not in bytes: Data is bounded by the credit the client's
/// connection grants per channel (it is consumed there only once the agent's connection took
/// it), and each control message stands for a frame the client sent.
#[derive(Debug)]
pub(crate) enum ToAgent {
    Open {
        route: RouteId,
        kind: Box<OwnedOpenKind>,
        reply: ClientTx,
    },
    Data {
        route: RouteId,
        frame: Frame,
    },
    /// The client's connection took this many bytes of the route's output: the agent may send more.
    Consumed {
        route: RouteId,
        len: usize,
    },
    Resize {
        route: RouteId,
        size: WindowSize,
    },
    Signal {
        route: RouteId,
        signal: Signal,
    },
    Eof {
        route: RouteId,
    },
    Close {
        route: RouteId,
    },
}

/// From the agent's task to a client's; bounded as [`ToAgent`] is, by the agent connection's
/// credit.
#[derive(Debug)]
pub(crate) enum ToClient {
    Accepted {
        route: RouteId,
    },
    Refused {
        route: RouteId,
        reason: RefuseReason,
        message: String,
    },
    Data {
        route: RouteId,
        frame: Frame,
    },
    Consumed {
        route: RouteId,
        len: usize,
    },
    Exit {
        route: RouteId,
        status: ExitStatus,
    },
    Eof {
        route: RouteId,
    },
    /// The channel ended at the agent, or the agent is gone.
    Close {
        route: RouteId,
    },
}

/// Something owed on a channel, kept in the order it arrived: Exit, Eof and Close must not
/// overtake the Data before them, or a client would stop reading before the last output.
#[derive(Debug)]
pub(crate) enum Op {
    Data(Outbound),
    Exit(ExitStatus),
    Eof,
    Close,
}

/// Sends what `ops` holds for `channel` until credit, the replay buffer or the backlog stop
/// it, calling `sent` with the bytes of each Data that went. Returns false once the channel no
/// longer takes anything (it closed, or the connection is not up), after which the rest is
/// moot.
pub(crate) fn pump<const C: usize>(
    link: &mut Link,
    conn: &mut Connection<'_, C>,
    transport: &Transport,
    channel: u16,
    ops: &mut VecDeque<Op>,
    mut sent: impl FnMut(usize),
) -> bool {
    while let Some(op) = ops.front_mut() {
        let done = match op {
            Op::Data(data) => {
                let result = link.push_data(conn, transport, channel, data);
                if let Ok(n) = result {
                    if n > 0 {
                        sent(n);
                    }
                }
                match result {
                    Ok(_) if data.is_empty() => Ok(()),
                    Ok(_) => return true,
                    Err(e) => Err(e),
                }
            }
            Op::Exit(status) => conn.exit(channel, *status),
            Op::Eof => conn.eof(channel),
            Op::Close => conn.close(channel),
        };
        match done {
            Ok(()) => {}
            // The outbox is full or the connection is between transports: try again later.
            Err(CommandError::Busy | CommandError::NotConnected) => return true,
            // The channel has moved on (closed by the peer meanwhile): nothing more goes.
            Err(_) => {
                ops.clear();
                return false;
            }
        }
        ops.pop_front();
    }
    true
}
