//! What the tests of every crate share (h2's `tests/h2-support` is the model): the whole system
//! on loopback with real sockets and processes, peers driven by hand for what a real one never
//! sends, and the helpers that open channels and measure. Nothing here is defined twice in a
//! test.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "scaffolding for std programs")]

pub mod agent_by_hand;
pub mod binaries;
pub mod browser;
pub mod measure;
pub mod postgres;
pub mod raw;
pub mod relay_by_hand;
pub mod run;
pub mod system;

pub use browser::Browser;
pub use run::{
    Ran, exec, exec_on_terminal, forward_echo, forward_to, nothing, pipes, read_until, run, run_on, size,
};
pub use system::{ClosedPort, Echo, Proxy, System, agent_config, relay_on};
