//! The state machine's time, on tokio's clock.

use session_proto::connection::Instant;

/// Milliseconds since the clock was made, as the state machine counts time. A connection and
/// the clock it is driven by must be made together: the connection's instants count from it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: tokio::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { epoch: tokio::time::Instant::now() }
    }
}

impl Clock {
    /// Now, for `Connection::handle` and `Connection::handle_timeout`.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Sleeps until `deadline` (from `Connection::poll_timeout`), or forever without one.
    pub async fn sleep_until(&self, deadline: Option<Instant>) {
        match deadline {
            Some(at) => {
                let at = self.epoch + core::time::Duration::from_millis(at.as_millis());
                tokio::time::sleep_until(at).await;
            }
            None => core::future::pending().await,
        }
    }
}
