//! A PostgreSQL server for the tests that run the store on it: each test gets a database of its
//! own, made here, on one server that every test process of the machine shares.
//!
//! `SESSION_TEST_POSTGRES` may name a server where databases can be made (a URL, say
//! `postgresql:///postgres?host=/run/postgresql&user=postgres`). Without it, the first test
//! that asks starts one from Debian's `postgresql` package in `$TMPDIR/session-tests-postgres`,
//! listening on a Unix socket there and on no TCP port, and later tests and test processes
//! find it running. As root it runs as the package's `postgres` user, since PostgreSQL
//! refuses to run as root. Without the package the tests that need it fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The URL of a new, empty database, which no other test uses.
pub fn database() -> String {
    static SERVER: OnceLock<Server> = OnceLock::new();
    let server = SERVER.get_or_init(Server::find_or_start);
    static MADE: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}_{}_{}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed), nonce());
    let (admin, described) = (server.url("postgres"), server.describe());
    let create = format!("CREATE DATABASE {name}");
    // On a thread of its own: the blocking client must not run on a test's runtime.
    let made = std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the tests' PostgreSQL at {described}: {e}"));
        admin.batch_execute(&create).expect("a database for the test");
    })
    .join();
    assert!(made.is_ok(), "no database for the test");
    server.url(&name)
}

fn nonce() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

enum Server {
    /// `SESSION_TEST_POSTGRES`: a URL, whose database name is replaced.
    Given(String),
    /// Ours, on a socket in this directory.
    Started(PathBuf),
}

impl Server {
    fn url(&self, database: &str) -> String {
        match self {
            Server::Given(url) => {
                let mut url = url::Url::parse(url).expect("SESSION_TEST_POSTGRES is a URL");
                url.set_path(database);
                url.to_string()
            }
            Server::Started(dir) => {
                format!("postgresql:///{database}?user=postgres&host={}", dir.join("socket").display())
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Server::Given(url) => url.clone(),
            Server::Started(dir) => dir.display().to_string(),
        }
    }

    fn find_or_start() -> Server {
        if let Ok(url) = std::env::var("SESSION_TEST_POSTGRES") {
            return Server::Given(url);
        }
        let dir = std::env::temp_dir().join("session-tests-postgres");
        std::fs::create_dir_all(&dir).expect("the tests' PostgreSQL directory");
        // One test process at a time starts it; the others wait, then find it running.
        let lock = std::fs::File::create(dir.join("lock")).expect("the lock file");
        let locked = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e);
        let _locked = locked.expect("the lock");
        start(&dir);
        Server::Started(dir)
    }
}

/// Where Debian keeps the server's programs: `/usr/lib/postgresql/<major>/bin`, the newest.
fn programs() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .filter(|b| b.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("no PostgreSQL server: install Debian's postgresql package (bash .ci/run does as root), or set SESSION_TEST_POSTGRES")
    })
}

fn start(dir: &Path) {
    let bin = programs();
    let data = dir.join("data");
    let socket = dir.join("socket");
    let root = is_root();
    let as_server = |program: &str| {
        let mut command = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        };
        command.current_dir(dir);
        command
    };
    if !data.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&socket).expect("the socket's directory");
        if root {
            let chowned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status();
            assert!(chowned.is_ok_and(|s| s.success()), "chown {} to postgres", dir.display());
        }
        let made = as_server("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-sync", "--encoding=UTF8", "--locale=C", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(made.status.success(), "initdb: {}", String::from_utf8_lossy(&made.stderr));
    }
    let running = as_server("pg_ctl").arg("status").arg("-D").arg(&data).output().expect("pg_ctl runs");
    if running.status.success() {
        return;
    }
    let options =
        format!("-c listen_addresses='' -k {} -c fsync=off -c max_connections=400", socket.display());
    let started = as_server("pg_ctl")
        .args(["start", "-w", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .arg("-o")
        .arg(options)
        .output()
        .expect("pg_ctl runs");
    assert!(
        started.status.success(),
        "pg_ctl start: {} (see {})",
        String::from_utf8_lossy(&started.stderr),
        dir.join("log").display()
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
