//! `session-client cp`: scp's command line over File channels. Sources all on one side and the
//! target on the other; one connection to the relay carries every file, a few at once.
//!
//! - A target that is a directory (or is written with a trailing `/`, or is `instance:`, the
//!   home directory) receives each source under its own name; otherwise the one source is
//!   copied to that name.
//! - `-r` copies a directory: its directories are made first, parents before children, then its
//!   files go, [`AT_ONCE`] at a time. A symbolic link is copied as the file it names (as scp
//!   does); one that names a directory is skipped with a warning, so a loop cannot recurse.
//! - A file that fails is reported and the others go on; a lost session stops everything. The
//!   exit code is the first failure's (see [`Failure::exit_code`]).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_client::{Connection, Relay};
use session_proto::{EntryKind, FileError};
use tokio::task::JoinSet;
use tracing::info;

use super::paths::{self, Location};
use super::progress::Progress;
use super::remote::Remote;
use super::transfer::{self, Settings};
use super::{EXIT_INTERRUPTED, Failure};

/// Files copied at once over the one connection: enough to hide the round trips of small
/// files, few enough that each large one keeps a fair share.
const AT_ONCE: usize = 4;

/// `cp`'s flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) recursive: bool,
    pub(crate) resume: bool,
    pub(crate) force: bool,
}

/// One file to copy.
#[derive(Debug)]
enum Job {
    Download { source: Vec<u8>, target: PathBuf },
    Upload { source: PathBuf, target: Vec<u8> },
}

/// What a run is shared with its jobs.
struct Run {
    remote: Remote,
    settings: Settings,
    progress: Progress,
    options: Options,
}

/// Copies as `args` (sources, then the target) say; the exit code, failures said on stderr.
pub(crate) async fn cp(relay: &Relay, args: &[OsString], options: Options) -> i32 {
    let progress = Progress::on_stderr();
    let result = async {
        let (sources, target, instance) = parse(args)?;
        let connection = Connection::connect(relay, &instance).await?;
        let copied = tokio::select! {
            code = copy(&connection, &instance, &sources, target, options, &progress) => code,
            _ = tokio::signal::ctrl_c() => {
                progress.say("session-client: interrupted; partial files are kept: the same command with --resume continues");
                EXIT_INTERRUPTED
            }
        };
        // The copies dropped above closed their channels (an upload's partial file stays at
        // the agent); the relay hears the end now rather than keeping the session for a
        // re-attach. A second Ctrl-C does not wait for it.
        tokio::select! {
            () = connection.close() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, Failure>(copied)
    };
    match result.await {
        Ok(code) => code,
        Err(failure) => {
            progress.say(&format!("session-client: {failure}"));
            failure.exit_code()
        }
    }
}

/// The sources, the target and the one instance of a command line.
fn parse(args: &[OsString]) -> Result<(Vec<Location>, Location, String), Failure> {
    let (target, sources) = match args.split_last() {
        Some((target, sources)) if !sources.is_empty() => (Location::parse(target), sources),
        _ => return Err(Failure::Usage("cp needs a source and a target".into())),
    };
    let sources: Vec<Location> = sources.iter().map(|s| Location::parse(s)).collect();
    let remotes: Vec<&str> = sources
        .iter()
        .chain([&target])
        .filter_map(|l| match l {
            Location::Remote { instance, .. } => Some(instance.as_str()),
            Location::Local(_) => None,
        })
        .collect();
    let Some(&instance) = remotes.first() else {
        return Err(Failure::Usage("one side must be on an instance: instance:path".into()));
    };
    if remotes.iter().any(|&other| other != instance) {
        return Err(Failure::Usage(
            "one instance at a time: copy from one to here, then here to the other".into(),
        ));
    }
    let download = matches!(target, Location::Local(_));
    if sources.iter().any(|s| matches!(s, Location::Local(_)) == download) {
        return Err(Failure::Usage("the sources must all be on the other side from the target".into()));
    }
    let instance = instance.to_owned();
    Ok((sources, target, instance))
}

/// Plans and runs the copies on `connection`: the first failure's exit code, or 0.
async fn copy(
    connection: &Connection,
    instance: &str,
    sources: &[Location],
    target: Location,
    options: Options,
    progress: &Progress,
) -> i32 {
    let run = Arc::new(Run {
        remote: Remote::new(connection.clone(), instance),
        settings: Settings { resume: options.resume, force: options.force, umask: umask() },
        progress: progress.clone(),
        options,
    });
    let mut failures = Failures::default();
    let jobs = match target {
        Location::Local(target) => plan_downloads(&run, sources, &target, &mut failures).await,
        Location::Remote { path, .. } => plan_uploads(&run, sources, &path, &mut failures).await,
    };
    if let Ok(jobs) = jobs {
        run_jobs(&run, jobs, &mut failures).await;
    }
    failures.code()
}

/// The failures of a run: each said as it happens, the first one's code the exit code.
#[derive(Default)]
struct Failures {
    first: Option<i32>,
    fatal: bool,
}

impl Failures {
    /// Records `failure`; an error if nothing more can be done.
    fn add(&mut self, progress: &Progress, failure: &Failure) -> Result<(), ()> {
        progress.say(&format!("session-client: {failure}"));
        self.first.get_or_insert(failure.exit_code());
        if failure.is_fatal() {
            self.fatal = true;
            return Err(());
        }
        Ok(())
    }

    fn code(&self) -> i32 {
        self.first.unwrap_or(0)
    }
}

/// The files to fetch from the instance, with the local directories they go into made.
async fn plan_downloads(
    run: &Run,
    sources: &[Location],
    target: &Path,
    failures: &mut Failures,
) -> Result<Vec<Job>, ()> {
    let into_dir = target.is_dir() || target.as_os_str().as_bytes().ends_with(b"/");
    if sources.len() > 1 && !into_dir {
        let failure =
            Failure::Usage(format!("{}: not a directory, and several sources go there", target.display()));
        failures.add(&run.progress, &failure)?;
        return Err(());
    }
    let mut jobs = Vec::new();
    for source in sources {
        let Location::Remote { path: typed, .. } = source else { continue };
        let planned = async {
            let path = run.remote.resolve(typed).await?;
            let name = paths::split(&path).map(|(_, name)| name.to_vec());
            let local = match (into_dir, name) {
                (true, Some(name)) => target.join(OsString::from_vec(name)),
                _ => target.to_path_buf(),
            };
            if !run.options.recursive {
                jobs.push(Job::Download { source: path, target: local });
                return Ok(());
            }
            // `-r`: a directory (or a link to one) is walked; anything else is one file.
            match run.remote.stat_following(&path).await? {
                Some(entry) if entry.is_dir() => walk_remote(run, path, local, &mut jobs, failures).await,
                Some(_) => {
                    jobs.push(Job::Download { source: path, target: local });
                    Ok(())
                }
                None => Err(run
                    .remote
                    .failed(FileError::NOT_FOUND, &format!("not found: {}", String::from_utf8_lossy(&path)))),
            }
        };
        if let Err(failure) = planned.await {
            failures.add(&run.progress, &failure)?;
        }
    }
    Ok(jobs)
}

/// Makes `local` and, under it, the directories of the instance's `dir`; its files become jobs.
async fn walk_remote(
    run: &Run,
    dir: Vec<u8>,
    local: PathBuf,
    jobs: &mut Vec<Job>,
    failures: &mut Failures,
) -> Result<(), Failure> {
    let mut pending = vec![(dir, local)];
    while let Some((dir, local)) = pending.pop() {
        match local.symlink_metadata() {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Failure::Other(format!("{}: exists and is not a directory", local.display())));
            }
            Err(_) => std::fs::create_dir(&local).map_err(|e| Failure::local(local.display(), e))?,
        }
        let entries = match run.remote.list(&dir).await {
            Ok(entries) => entries,
            Err(failure) if !failure.is_fatal() => {
                failures.add(&run.progress, &failure).map_err(|()| failure)?;
                continue;
            }
            Err(failure) => return Err(failure),
        };
        for entry in entries {
            let source = paths::join(&dir, &entry.name);
            let target = local.join(OsString::from_vec(entry.name.clone()));
            match entry.kind {
                EntryKind::DIRECTORY => pending.push((source, target)),
                EntryKind::FILE => jobs.push(Job::Download { source, target }),
                EntryKind::SYMLINK => match run.remote.stat_following(&source).await {
                    Ok(Some(named)) if named.kind == EntryKind::FILE => {
                        jobs.push(Job::Download { source, target })
                    }
                    Ok(_) => run.progress.say(&format!(
                        "session-client: {}: skipped, a symbolic link to no regular file",
                        run.remote.shown(&source)
                    )),
                    Err(failure) => failures.add(&run.progress, &failure).map_err(|()| failure)?,
                },
                _ => run.progress.say(&format!(
                    "session-client: {}: skipped, not a regular file",
                    run.remote.shown(&source)
                )),
            }
        }
    }
    Ok(())
}

/// The files to send to the instance, with the remote directories they go into made.
async fn plan_uploads(
    run: &Run,
    sources: &[Location],
    typed: &[u8],
    failures: &mut Failures,
) -> Result<Vec<Job>, ()> {
    let target = match run.remote.resolve(typed).await {
        Ok(target) => target,
        Err(failure) => {
            failures.add(&run.progress, &failure)?;
            return Err(());
        }
    };
    // What the target is decides where each source goes. A policy may allow writing under a
    // directory without a look at it (no session:ListFiles): the target is then what its
    // form says, a directory when it ends with `/`.
    let several = sources.len() > 1;
    let (exists, into_dir) = match run.remote.stat_following(&target).await {
        Ok(found) => (found.is_some(), found.is_some_and(|e| e.is_dir())),
        Err(failure) if failure.is_prohibited() => {
            info!(target = %run.remote.shown(&target), "not allowed to look at the target: taken as written");
            (true, paths::names_directory(typed) || several)
        }
        Err(failure) => {
            failures.add(&run.progress, &failure)?;
            return Err(());
        }
    };
    let failure = if !exists && (paths::names_directory(typed) || several) {
        let missing = format!("no such directory: {}", String::from_utf8_lossy(&target));
        Some(run.remote.failed(FileError::NOT_FOUND, &missing))
    } else if exists && several && !into_dir {
        let shown = run.remote.shown(&target);
        Some(Failure::Usage(format!("{shown}: not a directory, and several sources go there")))
    } else {
        None
    };
    if let Some(failure) = failure {
        failures.add(&run.progress, &failure)?;
        return Err(());
    }
    let mut jobs = Vec::new();
    for source in sources {
        let Location::Local(source) = source else { continue };
        let planned = async {
            let meta = std::fs::metadata(source).map_err(|e| Failure::local(source.display(), e))?;
            let name = match source.file_name() {
                Some(name) => name.to_os_string(),
                // `.`, `..`, `/`: the name is the directory's own.
                None => std::fs::canonicalize(source)
                    .ok()
                    .and_then(|p| p.file_name().map(ToOwned::to_owned))
                    .unwrap_or_default(),
            };
            let remote = if into_dir && !name.is_empty() {
                paths::join(&target, name.as_bytes())
            } else {
                target.clone()
            };
            if !meta.is_dir() {
                jobs.push(Job::Upload { source: source.clone(), target: remote });
                return Ok(());
            }
            if !run.options.recursive {
                return Err(Failure::Other(format!(
                    "{}: is a directory (-r copies directories)",
                    source.display()
                )));
            }
            walk_local(run, source.clone(), remote, &mut jobs, failures).await
        };
        if let Err(failure) = planned.await {
            failures.add(&run.progress, &failure)?;
        }
    }
    Ok(jobs)
}

/// Makes `remote` and, under it, the directories of the local `dir`; its files become jobs.
async fn walk_local(
    run: &Run,
    dir: PathBuf,
    remote: Vec<u8>,
    jobs: &mut Vec<Job>,
    failures: &mut Failures,
) -> Result<(), Failure> {
    let mut pending = vec![(dir, remote)];
    while let Some((dir, remote)) = pending.pop() {
        let mode = std::fs::metadata(&dir)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o755);
        // Writable by its owner while it is filled, whatever the source's mode.
        run.remote.mkdir(&remote, mode | 0o700).await?;
        let read = std::fs::read_dir(&dir).map_err(|e| Failure::local(dir.display(), e));
        let mut entries: Vec<_> = match read {
            Ok(read) => read.filter_map(Result::ok).collect(),
            Err(failure) => {
                failures.add(&run.progress, &failure).map_err(|()| failure)?;
                continue;
            }
        };
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let target = paths::join(&remote, entry.file_name().as_bytes());
            // Links are followed, as scp follows them; a link to a directory is not.
            let (linked, meta) = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => (true, std::fs::metadata(&path)),
                _ => (false, std::fs::symlink_metadata(&path)),
            };
            match meta {
                Ok(meta) if meta.is_dir() && !linked => pending.push((path, target)),
                Ok(meta) if meta.is_file() => jobs.push(Job::Upload { source: path, target }),
                Ok(_) => run.progress.say(&format!(
                    "session-client: {}: skipped, {}",
                    path.display(),
                    if linked { "a symbolic link to no regular file" } else { "not a regular file" }
                )),
                Err(e) => failures
                    .add(&run.progress, &Failure::local(path.display(), e))
                    .map_err(|()| Failure::Other(format!("{}: stopped", path.display())))?,
            }
        }
    }
    Ok(())
}

/// Runs `jobs`, [`AT_ONCE`] at a time, until done or the session is lost.
async fn run_jobs(run: &Arc<Run>, jobs: Vec<Job>, failures: &mut Failures) {
    let mut jobs = jobs.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < AT_ONCE && !failures.fatal {
            let Some(job) = jobs.next() else { break };
            let run = Arc::clone(run);
            running.spawn(async move {
                match job {
                    Job::Download { source, target } => {
                        let copied =
                            transfer::download(&run.remote, &source, &target, run.settings, &run.progress)
                                .await;
                        match copied {
                            Err(Failure::Remote { error: FileError::IS_A_DIRECTORY, .. })
                                if !run.options.recursive =>
                            {
                                let shown = run.remote.shown(&source);
                                Err(Failure::Other(format!(
                                    "{shown}: is a directory (-r copies directories)"
                                )))
                            }
                            other => other,
                        }
                    }
                    Job::Upload { source, target } => {
                        transfer::upload(&run.remote, &source, &target, run.settings, &run.progress).await
                    }
                }
            });
        }
        let Some(done) = running.join_next().await else { return };
        let failure = match done {
            Ok(Ok(())) => continue,
            Ok(Err(failure)) => failure,
            Err(e) => Failure::Other(format!("a copy failed: {e}")),
        };
        if failures.add(&run.progress, &failure).is_err() {
            // The session is gone: the others cannot finish either.
            running.abort_all();
            // A copy cut short (not one refused) left its partial file.
            if matches!(&failure, Failure::Session(error) if !error.is_refusal()) {
                run.progress
                    .say("session-client: partial files are kept: the same command with --resume continues");
            }
            return;
        }
    }
}

/// The process's file mode creation mask, which a downloaded file's mode goes through as a
/// new file's does.
fn umask() -> u32 {
    use rustix::fs::Mode;
    // Read by setting it, then put back: done before any file is made.
    let mask = rustix::process::umask(Mode::empty());
    rustix::process::umask(mask);
    mask.bits()
}
