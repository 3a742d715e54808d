//! What a port forward may reach, decided by the agent whatever the relay's policies allowed
//! (spec 12.8). The relay sees only the host string an Open names; the agent sees the addresses
//! it resolves to, and is the one place that can refuse a name that resolves somewhere it must
//! not go.
//!
//! A rule is `host[:ports]`:
//! - `host` is an address range in CIDR form (`10.0.0.0/8`, `::1/128`), an exact address
//!   (`127.0.0.1`, `::1`), or a name pattern (`db.internal`, `*.internal`, `*` for any host),
//!   where `*` matches any run of characters and names compare without regard to ASCII case.
//!   An IPv6 host with ports goes in brackets: `[::1]:22`, `[fd00::/8]:443`.
//! - `ports` is `22`, a range `8000-8999`, or `*`; without it, every port.
//!
//! A target is checked at every address it resolves to, and the agent connects only to an
//! address that passed, so a name cannot resolve to something else between check and connect.
//! For each address, in order:
//! 1. a `--forward-deny` rule matches: refused;
//! 2. the address is link-local or a cloud metadata address (169.254.0.0/16, fe80::/10,
//!    fd00:ec2::254) and no `--forward-allow` rule *names* it (an address or range inside that
//!    block, so `0.0.0.0/0` or `*` does not): refused;
//! 3. no `--forward-allow` rule is given: allowed;
//! 4. a `--forward-allow` rule matches: allowed; otherwise refused.
//!
//! Address rules match the resolved address; name rules match the host as the Open names it.
//! An IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) is taken as the IPv4 address it maps,
//! on both sides, since a connection to it reaches that address.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

use session_link::pattern::glob;

/// The longest name pattern: a DNS name is at most 253 characters.
const MAX_NAME_LEN: usize = 253;

/// Blocks refused unless a `--forward-allow` rule names an address in them: link-local
/// addresses, where clouds serve instance metadata and credentials (169.254.169.254), and
/// AWS's IPv6 metadata address.
const GUARDED: [(IpAddr, u8); 3] = [
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
    (IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), 128),
];

/// What of a target a rule's host matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Every address whose first `prefix` bits are those of `network` (an exact address is
    /// /32 or /128).
    Addresses {
        /// The range's first address.
        network: IpAddr,
        /// How many leading bits are fixed.
        prefix: u8,
    },
    /// A name pattern in lowercase, matched against the host the Open names.
    Name(String),
}

/// A rule: a host and the ports it covers, from `--forward-allow` or `--forward-deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// As the operator wrote it: the words of a refusal it decides.
    text: String,
    host: Host,
    /// Inclusive.
    ports: (u16, u16),
}

/// Why a rule was not understood; each names the rule.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// No host before the ports, or nothing at all.
    NoHost {
        /// The rule.
        rule: String,
    },
    /// The ports are not `N`, `N-M` or `*` with 1 ≤ N ≤ M ≤ 65535.
    Ports {
        /// The rule.
        rule: String,
    },
    /// `[` without its `]`, or something other than `:ports` after it.
    Brackets {
        /// The rule.
        rule: String,
    },
    /// A CIDR whose address or prefix length is not one.
    Range {
        /// The rule.
        rule: String,
    },
    /// A CIDR with bits set past its prefix, likely a typo of `network`.
    HostBits {
        /// The rule.
        rule: String,
        /// The range it would be with those bits clear.
        network: String,
    },
    /// A name pattern with characters a name does not have, or too long.
    Name {
        /// The rule.
        rule: String,
    },
    /// A pattern of digits, dots and `*` (`10.0.*`): it would match names too, such as
    /// `10.0.example.net`, so addresses are written as ranges.
    AddressPattern {
        /// The rule.
        rule: String,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::NoHost { rule } => write!(f, "{rule:?}: a rule is host[:ports], and has a host"),
            RuleError::Ports { rule } => {
                write!(f, "{rule:?}: ports are a port (22), a range (8000-8999) or *, from 1 to 65535")
            }
            RuleError::Brackets { rule } => {
                write!(f, "{rule:?}: brackets hold an IPv6 address or range, then :ports if any ([::1]:22)")
            }
            RuleError::Range { rule } => {
                write!(f, "{rule:?}: a range is an address and a prefix length (10.0.0.0/8, fd00::/8)")
            }
            RuleError::HostBits { rule, network } => {
                write!(f, "{rule:?}: bits are set past the prefix length (did you mean {network}?)")
            }
            RuleError::Name { rule } => write!(
                f,
                "{rule:?}: a host is an address, a range, or a name of letters, digits, '-', '.', '_' \
                 and '*'"
            ),
            RuleError::AddressPattern { rule } => write!(
                f,
                "{rule:?}: a pattern of digits would also match names (10.0.example.net): write \
                 addresses as a range (10.0.0.0/16)"
            ),
        }
    }
}

impl std::error::Error for RuleError {}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Rule, RuleError> {
        let rule = || text.to_owned();
        let (host, ports) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) =
                    rest.split_once(']').ok_or_else(|| RuleError::Brackets { rule: rule() })?;
                let ports = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| RuleError::Brackets { rule: rule() })?),
                };
                if host.parse::<Ipv6Addr>().is_err()
                    && host.split_once('/').is_none_or(|(a, _)| a.parse::<Ipv6Addr>().is_err())
                {
                    return Err(RuleError::Brackets { rule: rule() });
                }
                (host, ports)
            }
            // One colon separates the ports; more make an IPv6 address, which needs brackets
            // to have ports.
            None if text.matches(':').count() == 1 => {
                let (host, ports) = text.split_once(':').unwrap_or((text, ""));
                (host, Some(ports))
            }
            None => (text, None),
        };
        if host.is_empty() {
            return Err(RuleError::NoHost { rule: rule() });
        }
        let ports = match ports {
            None => (1, u16::MAX),
            Some(ports) => parse_ports(ports).ok_or_else(|| RuleError::Ports { rule: rule() })?,
        };
        Ok(Rule { text: text.to_owned(), host: parse_host(text, host)?, ports })
    }
}

fn parse_ports(text: &str) -> Option<(u16, u16)> {
    // Digits only: `u16::from_str` would also take `+22`.
    let port = |p: &str| {
        let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| p.parse::<u16>().ok()).flatten().filter(|&p| p != 0)
    };
    let (first, last) = match text {
        "*" => return Some((1, u16::MAX)),
        _ => match text.split_once('-') {
            Some((first, last)) => (port(first)?, port(last)?),
            None => (port(text)?, port(text)?),
        },
    };
    (first <= last).then_some((first, last))
}

fn parse_host(rule: &str, host: &str) -> Result<Host, RuleError> {
    if let Some((address, prefix)) = host.split_once('/') {
        let range = || RuleError::Range { rule: rule.to_owned() };
        let address = address.parse::<IpAddr>().map_err(|_| range())?;
        let prefix = prefix.parse::<u8>().ok().filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()));
        let prefix = prefix.filter(|&p| p <= bits(address)).ok_or_else(range)?;
        let (network, prefix) = canonical_range(address, prefix);
        let cleared = first_address(network, prefix);
        if cleared != network {
            return Err(RuleError::HostBits {
                rule: rule.to_owned(),
                network: format!("{cleared}/{prefix}"),
            });
        }
        return Ok(Host::Addresses { network, prefix });
    }
    if let Ok(address) = host.parse::<IpAddr>() {
        let address = address.to_canonical();
        return Ok(Host::Addresses { network: address, prefix: bits(address) });
    }
    let name = host.to_ascii_lowercase();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._*".contains(c);
    if name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(RuleError::Name { rule: rule.to_owned() });
    }
    if name != "*" && name.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '*') {
        return Err(RuleError::AddressPattern { rule: rule.to_owned() });
    }
    Ok(Host::Name(name))
}

/// A range over IPv4-mapped IPv6 addresses (`::ffff:10.0.0.0/104`) as the IPv4 range it is.
fn canonical_range(address: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match address {
        IpAddr::V6(v6) if prefix >= 96 => {
            v6.to_ipv4_mapped().map_or((address, prefix), |v4| (IpAddr::V4(v4), prefix - 96))
        }
        _ => (address, prefix),
    }
}

fn bits(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

/// The first address of the range of `address` with `prefix` bits fixed.
fn first_address(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Whether `address` is in the range of `network` with `prefix` bits fixed (never across
/// families: both sides are canonical, so a mapped IPv4 address is IPv4).
fn contains(network: IpAddr, prefix: u8, address: IpAddr) -> bool {
    network.is_ipv4() == address.is_ipv4() && first_address(address, prefix) == network
}

/// The host as rules compare it: lowercase, without the root's trailing dot.
fn normal_name(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

impl Rule {
    /// As the operator wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn covers_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    /// Whether it matches the target named `name` (normalised) at `address`, on `port`.
    fn matches(&self, name: &str, address: IpAddr, port: u16) -> bool {
        self.covers_port(port)
            && match &self.host {
                Host::Addresses { network, prefix } => contains(*network, *prefix, address),
                Host::Name(pattern) => glob(pattern, name),
            }
    }

    /// Whether it names `address` explicitly: an address or range inside `block`.
    fn names_within(&self, address: IpAddr, (block, block_prefix): (IpAddr, u8), port: u16) -> bool {
        match self.host {
            Host::Addresses { network, prefix } => {
                prefix >= block_prefix
                    && contains(block, block_prefix, network)
                    && self.matches("", address, port)
            }
            Host::Name(_) => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why the agent will not connect a forward to a target: the Refuse PROHIBITED's message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `--forward-deny` rule matches.
    Denied {
        /// The target, with the address it resolved to when it is a name.
        target: String,
        /// The rule, as written.
        rule: String,
    },
    /// A link-local or metadata address, which no `--forward-allow` rule names.
    Guarded {
        /// The target, with the address it resolved to when it is a name.
        target: String,
    },
    /// `--forward-allow` rules are given, and none matches.
    NotAllowed {
        /// The target, with the address it resolved to when it is a name.
        target: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied { target, rule } => {
                write!(f, "{target} is not allowed by this agent: --forward-deny {rule} refuses it")
            }
            Refusal::Guarded { target } => write!(
                f,
                "{target} is not allowed by this agent: link-local and metadata addresses are refused \
                 unless --forward-allow names them"
            ),
            Refusal::NotAllowed { target } => {
                write!(f, "{target} is not allowed by this agent: no --forward-allow rule names it")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// The rules an agent applies to every forward's target. The default (no rule) allows every
/// target except link-local and metadata addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardRules {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

impl ForwardRules {
    /// Rules from `--forward-allow` and `--forward-deny`.
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>) -> ForwardRules {
        ForwardRules { allow, deny }
    }

    /// Whether a target named `host` is refused by its name alone, before it is resolved: a
    /// `--forward-deny` name rule matches it. Spares a lookup of a name that cannot pass.
    pub fn check_name(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let name = normal_name(host);
        let denied =
            self.deny.iter().find(|r| matches!(r.host, Host::Name(_)) && r.matches(&name, any(), port));
        match denied {
            Some(rule) => Err(Refusal::Denied { target: target(host, None, port), rule: rule.text.clone() }),
            None => Ok(()),
        }
    }

    /// Whether the target named `host`, at `address` (one it resolved to), may be reached on
    /// `port`.
    pub fn check(&self, host: &str, address: IpAddr, port: u16) -> Result<(), Refusal> {
        let name = normal_name(host);
        let address = address.to_canonical();
        let target = || target(host, Some(address), port);
        if let Some(rule) = self.deny.iter().find(|r| r.matches(&name, address, port)) {
            return Err(Refusal::Denied { target: target(), rule: rule.text.clone() });
        }
        if let Some(&block) = GUARDED.iter().find(|(network, prefix)| contains(*network, *prefix, address)) {
            if !self.allow.iter().any(|r| r.names_within(address, block, port)) {
                return Err(Refusal::Guarded { target: target() });
            }
        }
        if self.allow.is_empty() || self.allow.iter().any(|r| r.matches(&name, address, port)) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed { target: target() })
        }
    }

    /// The addresses of `resolved` (what `host` resolved to, in the resolver's order) that may
    /// be connected to, in that order, as canonical addresses; when none may, why the first
    /// was refused. Nothing resolved, nothing to refuse: an empty list.
    pub fn permitted(&self, host: &str, resolved: &[SocketAddr]) -> Result<Vec<SocketAddr>, Refusal> {
        let mut first_refusal = None;
        let mut permitted = Vec::new();
        for address in resolved {
            let canonical = SocketAddr::new(address.ip().to_canonical(), address.port());
            match self.check(host, canonical.ip(), canonical.port()) {
                Ok(()) if !permitted.contains(&canonical) => permitted.push(canonical),
                Ok(()) => {}
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match first_refusal {
            Some(refusal) if permitted.is_empty() => Err(refusal),
            _ => Ok(permitted),
        }
    }
}

/// An address no name rule looks at: name rules match names only.
fn any() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// `169.254.169.254:80`, `[fe80::1]:80`, or for a name `metadata.internal:80 (169.254.169.254)`.
fn target(host: &str, address: Option<IpAddr>, port: u16) -> String {
    let literal = host.parse::<IpAddr>().ok();
    match (literal, address) {
        (Some(literal), _) => SocketAddr::new(literal, port).to_string(),
        (None, Some(address)) => format!("{host}:{port} ({address})"),
        (None, None) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruled(allow: &[&str], deny: &[&str]) -> ForwardRules {
        let parse = |list: &[&str]| list.iter().map(|r| r.parse::<Rule>().unwrap()).collect();
        ForwardRules::new(parse(allow), parse(deny))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The decision for `host` at the address it is (or `address`, for a name).
    fn decide(rules: &ForwardRules, host: &str, address: &str, port: u16) -> Result<(), String> {
        rules.check(host, ip(address), port).map_err(|r| r.to_string())
    }

    #[test]
    fn rules_parse() {
        let cases: [(&str, Host, (u16, u16)); 12] = [
            ("10.0.0.0/8", Host::Addresses { network: ip("10.0.0.0"), prefix: 8 }, (1, 65535)),
            ("10.0.0.0/8:22", Host::Addresses { network: ip("10.0.0.0"), prefix: 8 }, (22, 22)),
            ("127.0.0.1:8000-8999", Host::Addresses { network: ip("127.0.0.1"), prefix: 32 }, (8000, 8999)),
            ("127.0.0.1:*", Host::Addresses { network: ip("127.0.0.1"), prefix: 32 }, (1, 65535)),
            ("::1", Host::Addresses { network: ip("::1"), prefix: 128 }, (1, 65535)),
            ("::1/128", Host::Addresses { network: ip("::1"), prefix: 128 }, (1, 65535)),
            ("[::1]:22", Host::Addresses { network: ip("::1"), prefix: 128 }, (22, 22)),
            ("[fd00::/8]:443", Host::Addresses { network: ip("fd00::"), prefix: 8 }, (443, 443)),
            (
                "::ffff:169.254.169.254",
                Host::Addresses { network: ip("169.254.169.254"), prefix: 32 },
                (1, 65535),
            ),
            ("[::ffff:10.0.0.0/104]:80", Host::Addresses { network: ip("10.0.0.0"), prefix: 8 }, (80, 80)),
            ("*.Internal:443", Host::Name("*.internal".into()), (443, 443)),
            ("*:22", Host::Name("*".into()), (22, 22)),
        ];
        for (text, host, ports) in cases {
            let rule: Rule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((rule.host, rule.ports, rule.text.as_str()), (host, ports, text), "{text}");
        }
    }

    #[test]
    fn malformed_rules_are_refused_naming_them() {
        let cases = [
            ("", "has a host"),
            (":22", "has a host"),
            ("10.0.0.1:", "ports are"),
            ("10.0.0.1:0", "ports are"),
            ("10.0.0.1:65536", "ports are"),
            ("10.0.0.1:9-8", "ports are"),
            ("10.0.0.1:+22", "ports are"),
            ("10.0.0.1:ssh", "ports are"),
            ("[::1", "brackets"),
            ("[::1]22", "brackets"),
            ("[db.internal]:22", "brackets"),
            ("10.0.0.0/33", "a range is"),
            ("10.0.0.0/+8", "a range is"),
            ("fd00::/129", "a range is"),
            ("nothing/8", "a range is"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("db internal", "a name of letters"),
            ("db/internal:22", "a range is"),
            ("10.0.*", "write addresses as a range"),
            ("10.0.0.*:22", "write addresses as a range"),
        ];
        for (text, problem) in cases {
            let error = text.parse::<Rule>().expect_err(text).to_string();
            assert!(error.starts_with(&format!("{text:?}: ")) && error.contains(problem), "{text}: {error}");
        }
    }

    #[test]
    fn by_default_everything_but_link_local_and_metadata() {
        let default = ForwardRules::default();
        for (host, address) in
            [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("db.internal", "10.1.2.3"), ("fd00::1", "fd00::1")]
        {
            assert_eq!(decide(&default, host, address, 5432), Ok(()), "{host}");
        }
        let guarded = "is not allowed by this agent: link-local and metadata addresses are refused unless \
                       --forward-allow names them";
        for (host, address, target) in [
            ("169.254.169.254", "169.254.169.254", "169.254.169.254:80".to_owned()),
            ("169.254.0.1", "169.254.0.1", "169.254.0.1:80".into()),
            ("fe80::1", "fe80::1", "[fe80::1]:80".into()),
            ("fd00:ec2::254", "fd00:ec2::254", "[fd00:ec2::254]:80".into()),
            // A mapped IPv4 address reaches the IPv4 one.
            ("::ffff:169.254.169.254", "::ffff:169.254.169.254", "[::ffff:169.254.169.254]:80".into()),
            // A name is judged by where it resolves.
            ("metadata.internal", "169.254.169.254", "metadata.internal:80 (169.254.169.254)".into()),
        ] {
            assert_eq!(decide(&default, host, address, 80), Err(format!("{target} {guarded}")), "{host}");
        }
    }

    #[test]
    fn only_a_rule_inside_the_guarded_block_opens_it() {
        for allow in ["169.254.169.254:80", "169.254.0.0/16", "[::ffff:169.254.169.254]:80"] {
            let rules = ruled(&[allow], &[]);
            assert_eq!(decide(&rules, "169.254.169.254", "169.254.169.254", 80), Ok(()), "{allow}");
        }
        // Named, but on another port; or a broad rule that only happens to cover it.
        for allow in ["169.254.169.254:443", "0.0.0.0/0", "169.0.0.0/8", "*", "*.internal", "::/0"] {
            let rules = ruled(&[allow, "127.0.0.1"], &[]);
            let refused = decide(&rules, "metadata.internal", "169.254.169.254", 80).unwrap_err();
            assert!(refused.contains("link-local and metadata"), "{allow}: {refused}");
        }
        let rules = ruled(&["fe80::/10"], &[]);
        assert_eq!(decide(&rules, "fe80::1", "fe80::1", 22), Ok(()));
        let rules = ForwardRules::new(vec!["fd00:ec2::254".parse().unwrap()], Vec::new());
        assert_eq!(decide(&rules, "fd00:ec2::254", "fd00:ec2::254", 80), Ok(()));
    }

    #[test]
    fn an_allow_list_admits_only_what_it_names() {
        let rules = ruled(&["127.0.0.1:5432", "10.0.0.0/8:8000-8999", "*.internal:443", "[::1]:22"], &[]);
        for (host, address, port) in [
            ("127.0.0.1", "127.0.0.1", 5432),
            ("localhost", "127.0.0.1", 5432),
            ("10.9.9.9", "10.9.9.9", 8000),
            ("app", "10.0.0.1", 8999),
            ("db.eu.internal", "192.168.1.1", 443),
            ("DB.Internal.", "192.168.1.1", 443),
            ("::1", "::1", 22),
        ] {
            assert_eq!(decide(&rules, host, address, port), Ok(()), "{host}:{port}");
        }
        for (host, address, port) in [
            ("127.0.0.1", "127.0.0.1", 5433),
            ("127.0.0.2", "127.0.0.2", 5432),
            ("10.9.9.9", "10.9.9.9", 9000),
            ("db.internal.example.com", "192.168.1.1", 443),
            ("db.eu.internal", "192.168.1.1", 80),
            ("::1", "::1", 23),
            ("0.0.0.0", "0.0.0.0", 5432),
        ] {
            let refused = decide(&rules, host, address, port).unwrap_err();
            assert!(
                refused.ends_with("is not allowed by this agent: no --forward-allow rule names it"),
                "{refused}"
            );
        }
    }

    #[test]
    fn deny_wins_over_allow_by_address_and_by_name() {
        let rules = ruled(&["*.internal", "10.0.0.0/8"], &["10.0.0.0/24:22", "vault.internal"]);
        assert_eq!(decide(&rules, "db.internal", "10.0.1.5", 22), Ok(()));
        assert_eq!(
            decide(&rules, "db.internal", "10.0.0.5", 22),
            Err("db.internal:22 (10.0.0.5) is not allowed by this agent: --forward-deny 10.0.0.0/24:22 refuses it"
                .into())
        );
        assert_eq!(
            rules.check_name("VAULT.internal", 8200).map_err(|r| r.to_string()),
            Err("VAULT.internal:8200 is not allowed by this agent: --forward-deny vault.internal refuses it"
                .into())
        );
        // Address rules wait for the addresses: by name alone, nothing else is refused.
        assert_eq!(rules.check_name("db.internal", 22), Ok(()));
        // Without an allow list, a deny list refuses only what it names.
        let rules = ForwardRules::new(Vec::new(), vec!["127.0.0.1:22".parse().unwrap()]);
        assert!(
            decide(&rules, "127.0.0.1", "127.0.0.1", 22).unwrap_err().contains("--forward-deny 127.0.0.1:22")
        );
        assert_eq!(decide(&rules, "127.0.0.1", "127.0.0.1", 2222), Ok(()));
    }

    #[test]
    fn a_name_is_reached_only_at_its_allowed_addresses() {
        let at = |text: &str| SocketAddr::new(ip(text), 80);
        let rules = ruled(&["127.0.0.1:80"], &[]);
        let resolved = [at("::1"), at("127.0.0.1"), at("::ffff:127.0.0.1")];
        assert_eq!(rules.permitted("localhost", &resolved), Ok(vec![at("127.0.0.1")]), "once, canonical");
        let default = ForwardRules::default();
        let rebinding = [at("169.254.169.254"), at("10.0.0.1")];
        assert_eq!(default.permitted("mixed.example", &rebinding), Ok(vec![at("10.0.0.1")]));
        let refused = default.permitted("metadata.example", &[at("169.254.169.254")]).unwrap_err();
        assert!(matches!(refused, Refusal::Guarded { .. }), "{refused}");
        assert_eq!(default.permitted("nothing.example", &[]), Ok(Vec::new()));
    }
}
