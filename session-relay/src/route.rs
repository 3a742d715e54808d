//! What the task of a client's connection and the task of an agent's connection tell each other
//! about the channels they couple, and the per-channel queue that keeps each direction in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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
/// The queue is bounded though unbounded in type: Data by the credit the client's connection
/// grants per channel (it is consumed there only once the agent's connection took it), Resize
/// and Signal by [`Controls`] (at most one message in flight per channel), and the rest by the
/// channel lifecycle (one Open, Eof and Close each).
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
    /// The route's [`Controls`] hold something.
    Controls {
        route: RouteId,
        controls: Arc<Controls>,
    },
    Eof {
        route: RouteId,
    },
    Close {
        route: RouteId,
    },
}

/// Resizes and signals a client sent on a channel, waiting for the agent's task: however fast
/// a client sends them, they take bounded room.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Only the latest size matters.
    resize: Option<WindowSize>,
    signals: heapless::Deque<Signal, MAX_PENDING_SIGNALS>,
    /// A [`ToAgent::Controls`] is on its way.
    announced: bool,
}

/// Signals a channel may have waiting for the agent's task; more are a flood, and dropped.
const MAX_PENDING_SIGNALS: usize = 8;

impl Controls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a resize or a signal; true when the agent's task must be told.
    pub(crate) fn record(&self, resize: Option<WindowSize>, signal: Option<Signal>) -> bool {
        let mut pending = self.lock();
        if let Some(size) = resize {
            pending.resize = Some(size);
        }
        if let Some(signal) = signal {
            let _ = pending.signals.push_back(signal);
        }
        !core::mem::replace(&mut pending.announced, true)
    }

    /// Takes what is waiting.
    pub(crate) fn take(&self) -> (Option<WindowSize>, heapless::Deque<Signal, MAX_PENDING_SIGNALS>) {
        let mut pending = self.lock();
        pending.announced = false;
        (pending.resize.take(), core::mem::take(&mut pending.signals))
    }
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
    /// Its owner ended the session from elsewhere.
    Terminate {
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
