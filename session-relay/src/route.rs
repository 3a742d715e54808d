//! What the task of a client's connection and the task of an agent's connection tell each other
//! about the channels they couple.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use session_codec::Frame;
use session_link::{Outbound, Transport};
use session_proto::owned::{OwnedFileEvent, OwnedOpenKind};
use session_proto::{EndReason, ExitStatus, RefuseReason, Signal, WindowSize};
use tokio::sync::mpsc;

/// One coupled channel, named the same in both tasks (each side's channel ids are its own).
pub(crate) type RouteId = u64;

/// Sends to the task of a client's connection.
pub(crate) type ClientTx = mpsc::UnboundedSender<ToClient>;

/// Sends to the task of an agent's connection.
pub(crate) type AgentTx = mpsc::UnboundedSender<ToAgent>;

/// To an agent's task: from a client's task about a coupled channel, or from the listener with
/// a new transport for the agent's detached session.
///
/// The queue is bounded though unbounded in type: Data and Resize and Signal by [`Inflow`] and
/// [`Controls`] (at most one message in flight per channel each; what waits in an inflow, by
/// the credit the client's connection grants per channel, consumed there only once the agent's
/// connection took it), the rest of a
/// channel's by its lifecycle (one Open, Eof and Close each), and re-attaches by the agent's
/// handshakes, each of which proved its key.
#[derive(Debug)]
pub(crate) enum ToAgent {
    /// The agent came back on a new transport, its first frame there asking to resume. Boxed:
    /// the queue's first block holds 32 of the largest message whether or not any is ever
    /// sent, and this one is the largest by far.
    Reattach(Box<Reattach>),
    /// A fresh connection of the same instance took the agent's place (spec 12.5).
    Superseded,
    Open {
        route: RouteId,
        kind: Box<OwnedOpenKind>,
        reply: ClientTx,
    },
    /// The route's [`Inflow`] holds Data.
    Data {
        route: RouteId,
        inflow: Arc<Inflow>,
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
    /// The client's End of an upload (spec 5.19), after its Data.
    File {
        route: RouteId,
        event: Box<OwnedFileEvent>,
    },
    Eof {
        route: RouteId,
    },
    Close {
        route: RouteId,
    },
}

/// An agent's new transport and its first frame there (a Hello asking to resume).
#[derive(Debug)]
pub(crate) struct Reattach {
    pub(crate) transport: Transport,
    pub(crate) hello: Frame,
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

/// Data one task of a coupling hands the other, waiting for that task: small frames are
/// gathered as they wait (see [`Outbound::gather`]), so that what waits costs about its bytes,
/// which the credit the sending side's connection grants bounds, however small the frames a
/// peer sends. One message at a time announces it, as for [`Controls`].
#[derive(Debug, Default)]
pub(crate) struct Inflow {
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    data: VecDeque<Outbound>,
    /// A [`ToAgent::Data`] or [`ToClient::Data`] is on its way.
    announced: bool,
}

impl Inflow {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a Data frame; true when the other task must be told.
    pub(crate) fn push(&self, frame: Frame) -> bool {
        let Some(data) = Outbound::frame(frame) else { return false };
        let mut waiting = self.lock();
        if !waiting.data.back_mut().is_some_and(|last| last.gather(&data)) {
            waiting.data.push_back(data);
        }
        !core::mem::replace(&mut waiting.announced, true)
    }

    /// Takes what is waiting, in order.
    pub(crate) fn take(&self) -> VecDeque<Outbound> {
        let mut waiting = self.lock();
        waiting.announced = false;
        core::mem::take(&mut waiting.data)
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
    /// The route's [`Inflow`] holds Data.
    Data {
        route: RouteId,
        inflow: Arc<Inflow>,
    },
    Consumed {
        route: RouteId,
        len: usize,
    },
    Exit {
        route: RouteId,
        status: ExitStatus,
    },
    /// A File channel's Start, End, Done or Failed from the agent, after the Data before it.
    File {
        route: RouteId,
        event: Box<OwnedFileEvent>,
    },
    Eof {
        route: RouteId,
    },
    /// The channel ended at the agent, or the agent is gone: then `why` says so, for the
    /// client's person (a Reason before the Close).
    Close {
        route: RouteId,
        why: Option<Why>,
    },
    /// The session is to end, and the client told `why` (a Reason TERMINATED): its owner or an
    /// operator ended it, or an operator took away its token or its instance.
    Terminate {
        route: RouteId,
        why: Why,
    },
    /// The client's new transport, whose first frame, `hello`, asks to resume this session.
    Reattach {
        transport: Transport,
        hello: Frame,
    },
}

/// Why a channel ends when its process's Exit does not say: what a Reason frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Why {
    pub(crate) code: EndReason,
    pub(crate) message: String,
}

/// The coupled channels of one connection's task: by this connection's channel id, and by
/// route, the name both tasks know a coupling by.
#[derive(Debug)]
pub(crate) struct Couplings<T> {
    by_channel: HashMap<u16, (RouteId, T)>,
    by_route: HashMap<RouteId, u16>,
}

impl<T> Default for Couplings<T> {
    fn default() -> Self {
        Couplings { by_channel: HashMap::new(), by_route: HashMap::new() }
    }
}

impl<T> Couplings<T> {
    pub(crate) fn insert(&mut self, channel: u16, route: RouteId, other_side: T) {
        self.by_route.insert(route, channel);
        self.by_channel.insert(channel, (route, other_side));
    }

    /// The route of `channel`, and what this side keeps of its other side.
    pub(crate) fn get(&self, channel: u16) -> Option<(RouteId, &T)> {
        self.by_channel.get(&channel).map(|(route, other)| (*route, other))
    }

    pub(crate) fn get_mut(&mut self, channel: u16) -> Option<(RouteId, &mut T)> {
        self.by_channel.get_mut(&channel).map(|(route, other)| (*route, other))
    }

    /// The channel `route` is coupled to here.
    pub(crate) fn channel(&self, route: RouteId) -> Option<u16> {
        self.by_route.get(&route).copied()
    }

    pub(crate) fn remove(&mut self, channel: u16) -> Option<(RouteId, T)> {
        let (route, other) = self.by_channel.remove(&channel)?;
        self.by_route.remove(&route);
        Some((route, other))
    }

    /// Every coupling, by channel.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, RouteId, &T)> {
        self.by_channel.iter().map(|(&channel, (route, other))| (channel, *route, other))
    }
}

// Every connected agent's queue allocates its first block of 32 messages when it is made,
// whether or not one is ever sent: kept small, it costs an idle agent 1 KiB rather than 3.
const _: () = assert!(size_of::<ToAgent>() <= 32);
