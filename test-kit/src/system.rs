//! The whole system on loopback for end-to-end tests: a real relay and real agents in this
//! process's runtime, over real sockets, optionally with a proxy on an agent's path that a test
//! can cut.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_agent::{AgentConfig, AgentKey, LoginUser};
use session_client::Connection;
use session_link::dial::Trust;
use session_relay::audit::Retention;
use session_relay::store::{ActivationTerms, Store};
use session_relay::{Access, Audit, Relay, RelayConfig, dev};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// A relay and the URL to reach it.
#[derive(Debug)]
pub struct System {
    /// The relay.
    pub relay: Relay,
    /// `ws://` and its address.
    pub url: String,
    /// Its store of users, tokens, keys and policies.
    pub store: Store,
    /// The relay as user `tester` reaches it, whom a policy allows everything.
    pub client: session_client::Relay,
    agents: Vec<JoinHandle<()>>,
}

impl System {
    /// A relay on a free loopback port with a store in memory, writing audit records to
    /// `audit` if given.
    pub async fn start(audit: Option<&std::path::Path>) -> System {
        System::with_store(Store::in_memory().expect("store"), audit).await
    }

    /// A relay on a free loopback port over `store`.
    pub async fn with_store(store: Store, audit: Option<&std::path::Path>) -> System {
        System::configured(store, audit, |_| {}).await
    }

    /// A relay on a free loopback port over `store`, its configuration changed by `adjust`.
    pub async fn configured(
        store: Store,
        audit: Option<&std::path::Path>,
        adjust: impl FnOnce(&mut RelayConfig),
    ) -> System {
        let audit = audit.map_or_else(Audit::log_only, |path| Audit::to_file(path).expect("audit file"));
        let access = Access::new(
            store.clone(),
            "test",
            audit.with_store(store.clone(), Retention::default()).expect("audit"),
        );
        let mut config = RelayConfig::new(access);
        adjust(&mut config);
        let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.expect("relay");
        let url = format!("ws://{}", relay.addr);
        let token = dev::full_access_user(&store, "tester", Duration::from_secs(3600)).expect("tester");
        let client = session_client::Relay::new(&url, &token);
        System { relay, url, store, client, agents: Vec::new() }
    }

    /// A new one-use activation code for `account`.
    pub fn activation(&self, account: &str) -> String {
        let terms =
            ActivationTerms { account: account.into(), label: None, ttl: Duration::from_secs(600), uses: 1 };
        self.store.create_activation(&terms).expect("activation code").0
    }

    /// Starts an agent named `name` dialing `relay_url` (the relay's, or a proxy's), and waits
    /// until the relay has it online. Sessions run as the user running the tests.
    pub async fn agent_via(&mut self, name: &str, relay_url: &str) {
        let user = LoginUser::resolve(None, true).expect("the test's user");
        self.agent_as(name, relay_url, user).await;
    }

    /// An agent whose sessions run as `user`, registering a new key with a new activation
    /// code for account `test`.
    pub async fn agent_as(&mut self, name: &str, relay_url: &str, user: LoginUser) {
        let mut config = agent_config(relay_url, name, &self.activation("test"));
        config.user = user;
        self.agents.push(tokio::spawn(session_agent::run(config)));
        self.wait_online(name).await;
    }

    /// An agent named `name` dialing the relay directly, its configuration changed by `adjust`
    /// (its forward rules, say), waited for until it is online.
    pub async fn agent_with(&mut self, name: &str, adjust: impl FnOnce(&mut AgentConfig)) {
        let mut config = agent_config(&self.url, name, &self.activation("test"));
        adjust(&mut config);
        self.agents.push(tokio::spawn(session_agent::run(config)));
        self.wait_online(name).await;
    }

    /// An agent for `name` registering into `account`, not waited for: it may be refused.
    pub fn agent_in(&self, name: &str, account: &str) -> JoinHandle<()> {
        tokio::spawn(session_agent::run(agent_config(&self.url, name, &self.activation(account))))
    }

    /// An agent dialing the relay directly.
    pub async fn agent(&mut self, name: &str) {
        let url = self.url.clone();
        self.agent_via(name, &url).await;
    }

    /// Waits until the relay lists `name` as online.
    pub async fn wait_online(&self, name: &str) {
        for _ in 0..500 {
            if self.relay.registry.is_online(name) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("agent {name} never came online");
    }

    /// A client connection to `instance`, as `tester`.
    pub async fn connect(&self, instance: &str) -> Connection {
        Connection::connect(&self.client, instance).await.expect("client connection")
    }

    /// The relay as a new user `name` reaches it, with policy `document` attached.
    pub fn user(&self, name: &str, document: &str) -> session_client::Relay {
        self.store.add_user(name).expect("user");
        self.store.put_policy(name, document).expect("policy");
        self.store.attach(name, name).expect("attachment");
        let (token, _) = self.store.create_token(name, Duration::from_secs(3600)).expect("token");
        session_client::Relay::new(&self.url, &token)
    }

    /// The audit log once `complete` says it holds what a test waits for (the store's writer is
    /// a thread of its own), or as it is after two seconds.
    pub async fn audit_until(&self, complete: impl Fn(&str) -> bool) -> String {
        let mut audit = String::new();
        for _ in 0..200 {
            audit = self.store.audit(10_000).expect("audit").join("\n");
            if complete(&audit) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        audit
    }

    /// The token of `tester`, whom a policy allows everything.
    pub fn token(&self) -> &str {
        &self.client.token
    }
}

/// An agent for `name` dialing `url` with a new key and activation `code`, running sessions as
/// the user running the tests, redialing quickly.
pub fn agent_config(url: &str, name: &str, code: &str) -> AgentConfig {
    let user = LoginUser::resolve(None, true).expect("the test's user");
    let mut config = AgentConfig::new(url, name, AgentKey::generate().expect("agent key"), user);
    config.activation = Some(code.to_owned());
    config.trust = Trust::system();
    config.max_backoff = Duration::from_millis(200);
    config.file_worker = Some(crate::binaries::agent_binary().to_path_buf());
    config
}

/// A relay over `store` on `addr`, as a restarted relay comes back on its port: while the
/// previous one's listener is still closing, binding is tried again (for up to five seconds).
pub async fn relay_on(addr: SocketAddr, store: Store) -> Relay {
    let access = Access::new(
        store.clone(),
        "test",
        Audit::log_only().with_store(store, Retention::default()).expect("audit"),
    );
    for _ in 0..500 {
        if let Ok(relay) = Relay::start(addr, RelayConfig::new(access.clone())).await {
            return relay;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} stayed taken");
}

impl Drop for System {
    fn drop(&mut self) {
        for agent in &self.agents {
            agent.abort();
        }
    }
}

/// A TCP proxy in front of `target`, whose connections [`Proxy::cut`] drops at once, as a
/// network failure would. After [`Proxy::hold_after_upgrade`], the connections it accepts pass
/// the target's HTTP response and hold back what the target says after it until
/// [`Proxy::release`]: a WebSocket is up, and the relay's Hello on it has not arrived.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
    hold: Arc<Hold>,
}

#[derive(Debug, Default)]
struct Hold {
    /// New connections are held while it is true; held bytes go once it is false.
    held: tokio::sync::watch::Sender<bool>,
    /// A held connection's client sent something after its HTTP request.
    spoke: tokio::sync::Notify,
}

impl Proxy {
    /// Starts a proxy to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("proxy");
        let addr = listener.local_addr().expect("proxy address");
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let hold = Arc::new(Hold::default());
        let accept = {
            let (links, hold) = (Arc::clone(&links), Arc::clone(&hold));
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let held = (*hold.held.borrow()).then(|| Arc::clone(&hold));
                    let link = tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                        match held {
                            Some(hold) => held_link(inbound, outbound, &hold).await,
                            None => {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        }
                    });
                    links.lock().expect("links").push(link);
                }
            })
        };
        Proxy { addr, links, accept, hold }
    }

    /// Drops every connection through the proxy; new ones are accepted.
    pub fn cut(&self) -> usize {
        let mut links = self.links.lock().expect("links");
        let cut = links.iter().filter(|l| !l.is_finished()).count();
        for link in links.drain(..) {
            link.abort();
        }
        cut
    }

    /// Connections accepted from now on hold back what the target says after its HTTP response.
    pub fn hold_after_upgrade(&self) {
        self.hold.held.send_replace(true);
    }

    /// Waits until the client of a held connection sent something after its HTTP request: on a
    /// WebSocket, its first frames.
    pub async fn client_spoke(&self) {
        self.hold.spoke.notified().await;
    }

    /// Lets what was held go, and holds no more.
    pub fn release(&self) {
        self.hold.held.send_replace(false);
    }
}

/// Where the end of an HTTP head (`\r\n\r\n`) is in `bytes`, given the state `seen` of the
/// stream so far (how many bytes of it ended the stream before); past the end once found.
fn head_end(seen: &mut usize, bytes: &[u8]) -> Option<usize> {
    const END: &[u8] = b"\r\n\r\n";
    for (i, &b) in bytes.iter().enumerate() {
        if *seen == END.len() {
            return Some(i);
        }
        *seen = if b == END[*seen] { *seen + 1 } else { usize::from(b == END[0]) };
    }
    (*seen == END.len()).then_some(bytes.len())
}

/// Both directions of a held connection.
async fn held_link(inbound: TcpStream, outbound: TcpStream, hold: &Hold) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_target, mut to_target) = outbound.into_split();
    let upstream = async {
        let (mut buf, mut seen, mut past_head) = (vec![0; 16 * 1024], 0, false);
        while let Ok(read @ 1..) = from_client.read(&mut buf).await {
            if past_head || head_end(&mut seen, &buf[..read]).is_some_and(|end| end < read) {
                past_head = true;
                hold.spoke.notify_one();
            }
            if to_target.write_all(&buf[..read]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let (mut buf, mut seen, mut holding) = (vec![0; 16 * 1024], 0, true);
        let mut held = hold.held.subscribe();
        while let Ok(read @ 1..) = from_target.read(&mut buf).await {
            let mut from = 0;
            if holding {
                if let Some(end) = head_end(&mut seen, &buf[..read]) {
                    if to_client.write_all(&buf[..end]).await.is_err() {
                        return;
                    }
                    from = end;
                    let _ = held.wait_for(|held| !held).await;
                    holding = false;
                }
            }
            if to_client.write_all(&buf[from..read]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(upstream, downstream);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A loopback port that nothing listens on for as long as this lives: a connection to it is
/// refused. Its socket is bound and never listens, so that no other test running meanwhile can
/// take the port, as one could if it were found free and let go.
#[derive(Debug)]
pub struct ClosedPort {
    /// The port, on 127.0.0.1.
    pub port: u16,
    _bound: TcpSocket,
}

impl ClosedPort {
    /// Reserves one.
    pub fn new() -> ClosedPort {
        let bound = TcpSocket::new_v4().expect("a socket");
        bound.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a loopback port");
        let port = bound.local_addr().expect("its address").port();
        ClosedPort { port, _bound: bound }
    }
}

impl Default for ClosedPort {
    fn default() -> ClosedPort {
        ClosedPort::new()
    }
}

/// A TCP echo server on a loopback port of its own: each connection gets back what it sends,
/// until it half-closes. It counts the connections it accepted, so that a test can tell that a
/// refused forward never reached it.
#[derive(Debug)]
pub struct Echo {
    /// Its port on 127.0.0.1.
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl Echo {
    /// Starts one.
    pub async fn start() -> Echo {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("echo");
        let port = listener.local_addr().expect("echo address").port();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let counted = Arc::clone(&accepted);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut write).await;
                });
            }
        });
        Echo { port, accepted, accept }
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
