//! Shells and commands: on a real pseudo-terminal, or on pipes with stdout and stderr apart,
//! as the login user the agent is configured with.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::{Pid, Uid, User};
use session_proto::{Env, ExitStatus, Signal, WindowSize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Child;

/// How long the process groups of a channel closed before its process ended have, after their
/// hangup, before they are sent SIGTERM: a shell saves its history, an editor its buffers.
pub const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// How long they have after SIGTERM before SIGKILL, which cannot be ignored.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the groups to empty after SIGKILL: only a process stuck in the kernel
/// (uninterruptible I/O) outlives it, and the agent does not wait on that for ever.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How often an ending group is asked whether any process of it is left: the kernel tells no
/// one when a group empties.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Who shells run as.
#[derive(Debug, Clone)]
pub struct LoginUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    shell: PathBuf,
    /// Set only when the agent must switch to this user (it runs as root).
    switch: bool,
}

impl LoginUser {
    /// The user sessions run as: `name`, or the user running the agent. Starting shells as
    /// root needs `allow_root`: a shell for every client as root is rarely what an operator wants.
    pub fn resolve(name: Option<&str>, allow_root: bool) -> Result<LoginUser, String> {
        let me = Uid::current();
        let user = match name {
            Some(name) => {
                User::from_name(name).map_err(|e| e.to_string())?.ok_or(format!("no user {name}"))?
            }
            None => User::from_uid(me).map_err(|e| e.to_string())?.ok_or("the agent's user is unknown")?,
        };
        if user.uid.is_root() && !allow_root {
            return Err(
                "sessions would run as root: name an unprivileged --user, or pass --allow-root".into()
            );
        }
        if user.uid != me && !me.is_root() {
            return Err(format!("the agent must run as root to start sessions as {}", user.name));
        }
        Ok(LoginUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            shell: user.shell,
            switch: user.uid != me,
        })
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The login shell (`-l`), or `command` run by it, with a clean environment.
    fn command(&self, command: Option<&str>, term: Option<&str>, env: &Env<'_>) -> tokio::process::Command {
        let shell =
            if self.shell.as_os_str().is_empty() { PathBuf::from("/bin/sh") } else { self.shell.clone() };
        let mut cmd = tokio::process::Command::new(&shell);
        match command {
            Some(command) => {
                cmd.arg("-c").arg(command);
            }
            None => {
                // A leading dash makes it a login shell, as login(1) does.
                let name = shell.file_name().map(OsString::from).unwrap_or_default();
                let mut arg0 = OsString::from("-");
                arg0.push(name);
                cmd.arg0(arg0);
            }
        }
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("SHELL", &shell)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin")
            // A user without a home directory (`/nonexistent`) starts in `/`, as login(1) does.
            .current_dir(if self.home.is_dir() { self.home.as_path() } else { Path::new("/") })
            .kill_on_drop(true);
        if let Ok(lang) = std::env::var("LANG") {
            cmd.env("LANG", lang);
        }
        if let Some(term) = term {
            cmd.env("TERM", term);
        }
        for var in env.iter() {
            cmd.env(var.name, var.value);
        }
        self.run_as(&mut cmd);
        cmd
    }

    /// Makes `cmd` run as this user, when the agent is another (shells, commands, file workers).
    pub(crate) fn run_as(&self, cmd: &mut tokio::process::Command) {
        if self.switch {
            // std sets the group first and drops supplementary groups before the uid.
            cmd.uid(self.uid).gid(self.gid);
        }
    }
}

/// A started process and the ends of its terminal or pipes.
pub(crate) struct Started {
    pub(crate) child: Child,
    pub(crate) input: Box<dyn AsyncWrite + Send + Unpin>,
    pub(crate) outputs: Vec<(session_proto::Stream, Box<dyn AsyncRead + Send + Unpin>)>,
    pub(crate) control: Control,
}

/// What lets the agent act on a running process.
pub(crate) enum Control {
    /// The terminal's master side, kept to resize it and to find its foreground process group.
    Pty(OwnedFd),
    /// The process leads its own process group.
    Pipes(Option<u32>),
}

impl Control {
    /// Applies a new window size (terminals only).
    pub(crate) fn resize(&self, size: WindowSize) {
        if let Control::Pty(fd) = self {
            let winsize = rustix::termios::Winsize {
                ws_row: size.rows,
                ws_col: size.cols,
                ws_xpixel: size.width_px,
                ws_ypixel: size.height_px,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(fd, winsize) {
                tracing::debug!(error = %e, "resize failed");
            }
        }
    }

    /// The process groups to end if the channel closes before `leader` (the started process,
    /// which leads a group of its own) exited: its group, and for a terminal the foreground
    /// groups it will have had.
    pub(crate) fn groups(&self, leader: Option<u32>) -> Groups {
        let terminal = match self {
            // A second descriptor: the channel closes its own as it goes.
            Control::Pty(fd) => fd.try_clone().ok(),
            Control::Pipes(_) => None,
        };
        let mut groups = Groups { live: Vec::new(), terminal, ours: nix::unistd::getpgrp() };
        if let Some(leader) = leader.and_then(|p| i32::try_from(p).ok()) {
            groups.add(Pid::from_raw(leader));
        }
        groups
    }

    /// Delivers `signal` to the foreground process group of the terminal, or to the command's
    /// process group: an interrupt reaches what the user is running, not only the shell.
    pub(crate) fn signal(&self, signal: Signal) {
        let Ok(signal) = NixSignal::try_from(i32::from(signal.0)) else { return };
        let group = match self {
            Control::Pty(fd) => nix::unistd::tcgetpgrp(fd).ok(),
            Control::Pipes(pid) => pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw),
        };
        if let Some(group) = group.filter(|&g| signallable(g, nix::unistd::getpgrp())) {
            if let Err(e) = killpg(group, signal) {
                tracing::debug!(error = %e, "signal not delivered");
            }
        }
    }
}

/// The process groups a started process may leave running when its channel closes before it
/// exited: its own (a terminal's shell leads a session, a command on pipes is put in a group of
/// its own), and each foreground group its terminal had meanwhile (an interactive shell runs
/// each job in a group of its own).
pub(crate) struct Groups {
    /// Groups not known to be empty yet.
    live: Vec<Pid>,
    terminal: Option<OwnedFd>,
    /// The agent's own group, never signalled.
    ours: Pid,
}

impl Groups {
    fn add(&mut self, group: Pid) {
        if signallable(group, self.ours) && !self.live.contains(&group) {
            self.live.push(group);
        }
    }

    /// Adds the terminal's foreground group, if it is another one now. Asked only while the
    /// session's leader is there: a terminal whose session ended reports a stale group or none.
    fn look(&mut self) {
        if let Some(group) = self.terminal.as_ref().and_then(|fd| nix::unistd::tcgetpgrp(fd).ok()) {
            self.add(group);
        }
    }

    /// Sends `signal` to every group still there, and forgets those that are not.
    fn signal(&mut self, signal: Option<NixSignal>) {
        self.live.retain(|&group| killpg(group, signal) != Err(Errno::ESRCH));
    }
}

/// Ends what is left of a process whose channel closed before it exited: a hangup, as when a
/// terminal goes away; then, after [`HANGUP_GRACE`], SIGTERM; then, after [`TERMINATE_GRACE`],
/// SIGKILL, each to every group in `groups`, stopping as soon as no process of them is left.
/// It owns and reaps `child`, so no zombie is left behind; and it runs as a task of its own, so
/// it outlives the channel and the agent's session, which are gone at once.
pub(crate) async fn end(mut child: Child, mut groups: Groups) {
    let steps = [
        (NixSignal::SIGHUP, HANGUP_GRACE),
        (NixSignal::SIGTERM, TERMINATE_GRACE),
        (NixSignal::SIGKILL, KILL_GRACE),
    ];
    for (signal, grace) in steps {
        // Once the leader exited (`try_wait` reaps it), the terminal's word is stale (see `look`).
        if matches!(child.try_wait(), Ok(None)) {
            groups.look();
        }
        groups.signal(Some(signal));
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            // Reaped first: as a zombie the leader would keep its group from ever being empty.
            let reaped = !matches!(child.try_wait(), Ok(None));
            groups.signal(None);
            if reaped && groups.live.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }
    // Dropping the child leaves it to tokio, which reaps it whenever it ends.
    tracing::warn!(groups = ?groups.live, "processes outlived SIGKILL");
}

/// Whether the agent may signal process group `group`, being in group `ours`. A terminal with
/// no foreground group reports 0, and killpg(0) would signal the agent's own group (and the
/// service manager's, or CI's, that it shares); 1 is init's.
fn signallable(group: Pid, ours: Pid) -> bool {
    group.as_raw() > 1 && group != ours
}

/// Starts a shell (no `command`) or a command, on a terminal when `pty` gives one.
pub(crate) fn start(
    user: &LoginUser,
    command: Option<&str>,
    pty: Option<(&str, WindowSize)>,
    env: &Env<'_>,
) -> std::io::Result<Started> {
    use session_proto::Stream;
    match pty {
        Some((term, size)) => {
            let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
            pty.resize(pty_process::Size::new_with_pixel(
                size.rows,
                size.cols,
                size.width_px,
                size.height_px,
            ))
            .map_err(std::io::Error::other)?;
            let cmd = pty_process::Command::from(user.command(command, Some(term), env));
            let child = cmd.spawn(pts).map_err(std::io::Error::other)?;
            let control = Control::Pty(std::os::fd::AsFd::as_fd(&pty).try_clone_to_owned()?);
            let (read, write) = pty.into_split();
            Ok(Started {
                child,
                input: Box::new(write),
                outputs: vec![(Stream::Stdout, Box::new(PtyReader(read)))],
                control,
            })
        }
        None => {
            let mut cmd = user.command(command, None, env);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
            let mut child = cmd.spawn()?;
            let missing = || std::io::Error::other("pipe missing");
            let input = child.stdin.take().ok_or_else(missing)?;
            let stdout = child.stdout.take().ok_or_else(missing)?;
            let stderr = child.stderr.take().ok_or_else(missing)?;
            let control = Control::Pipes(child.id());
            Ok(Started {
                child,
                input: Box::new(input),
                outputs: vec![(Stream::Stdout, Box::new(stdout)), (Stream::Stderr, Box::new(stderr))],
                control,
            })
        }
    }
}

/// A terminal's master side as a reader that ends where the terminal does: Linux reports EIO
/// once every process holding the other side has gone, after the last output was read.
struct PtyReader(pty_process::OwnedReadPty);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// How a process ended, as the protocol says it.
pub(crate) fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(u32::try_from(code).unwrap_or(255)),
        (None, Some(signal)) => ExitStatus::Signal {
            signal: Signal(u8::try_from(signal).unwrap_or(0).max(1)),
            core_dumped: status.core_dumped(),
        },
        (None, None) => ExitStatus::Code(255),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_terminal_without_a_session_reports_group_zero_which_is_never_signalled() {
        let (pty, _pts) = pty_process::open().expect("a pty");
        let group = nix::unistd::tcgetpgrp(&pty).expect("tcgetpgrp");
        assert_eq!(group.as_raw(), 0, "the hazard: killpg(0) is our own group");
        let ours = nix::unistd::getpgrp();
        assert!(!signallable(group, ours));
        assert!(!signallable(Pid::from_raw(1), ours), "init's group");
        assert!(!signallable(ours, ours), "our own group");
        assert!(signallable(Pid::from_raw(ours.as_raw() + 1), ours));
    }

    /// A command whose shell and background job both ignore the hangup and SIGTERM: SIGKILL
    /// ends the whole group, the job too, and the shell is reaped.
    #[tokio::test]
    async fn ending_reaches_sigkill_for_a_group_that_ignores_the_rest() {
        use tokio::io::AsyncReadExt;
        let user = LoginUser::resolve(None, true).expect("the test's user");
        let command = "trap '' HUP TERM; sleep 60 & echo ready; wait";
        let mut started = start(&user, Some(command), None, &Env::default()).expect("started");
        let (_, stdout) = started.outputs.first_mut().expect("stdout");
        let mut ready = [0u8; 6];
        let read = tokio::time::timeout(Duration::from_secs(10), stdout.read_exact(&mut ready));
        read.await.expect("a bound on a hang").expect("the job started");
        let leader = started.child.id().expect("a pid");
        let group = Pid::from_raw(i32::try_from(leader).expect("a pid"));
        let groups = started.control.groups(Some(leader));
        assert_eq!(groups.live, [group]);

        end(started.child, groups).await;
        let left = killpg(group, None);
        if left.is_ok() {
            // Not left behind by a failing test.
            let _ = killpg(group, NixSignal::SIGKILL);
        }
        assert_eq!(left, Err(Errno::ESRCH), "a process of the group is left");
        // Reaped: no zombie keeps the leader's pid.
        assert_eq!(nix::sys::signal::kill(group, None), Err(Errno::ESRCH));
    }
}
