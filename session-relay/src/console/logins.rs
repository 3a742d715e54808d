//! The browser's logins: a user presents a token once, and the browser holds a short-lived,
//! random login secret in an HttpOnly cookie instead (spec 11.10), so that the long-lived token
//! is never kept by the page nor put in any URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ring::digest::{SHA256, digest};

use crate::secret;
use crate::store::Principal;

/// The cookie's name.
pub(crate) const COOKIE: &str = "session-console";

/// How long a login lasts, at most: a working day. The token's own expiry and revocation are
/// checked at every use as well.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Logins one user holds at once; a further one ends the oldest. With the users finite, this
/// bounds the table however often anyone logs in.
const PER_USER: usize = 16;

#[derive(Debug, Clone)]
struct Login {
    who: Principal,
    created: SystemTime,
    expires: SystemTime,
}

/// The logins in force, by the SHA-256 of their secret: the relay's memory holds no cookie.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logins {
    inner: Arc<Mutex<HashMap<[u8; 32], Login>>>,
}

/// A login just made: the secret for the cookie, and when it expires.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) secret: String,
    pub(crate) expires: SystemTime,
}

impl Logins {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Login>> {
        // Every change is one insert or remove: a panic cannot leave the map half changed.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a login for `who`, which lasts `lifetime`.
    pub(crate) fn start(&self, who: Principal, lifetime: Duration) -> Result<Started, String> {
        let secret = hex::encode(secret::random::<32>()?);
        let now = SystemTime::now();
        let expires = now + lifetime;
        let mut logins = self.lock();
        logins.retain(|_, login| login.expires > now);
        let mut own: Vec<([u8; 32], SystemTime)> = logins
            .iter()
            .filter(|(_, login)| login.who.user == who.user)
            .map(|(key, login)| (*key, login.created))
            .collect();
        if own.len() >= PER_USER {
            own.sort_by_key(|(_, created)| *created);
            for (key, _) in own.iter().take(own.len() + 1 - PER_USER) {
                logins.remove(key);
            }
        }
        logins.insert(key(&secret), Login { who, created: now, expires });
        Ok(Started { secret, expires })
    }

    /// Who the login `secret` is for, and until when, while it lasts.
    pub(crate) fn find(&self, secret: &str) -> Option<(Principal, SystemTime)> {
        let now = SystemTime::now();
        let logins = self.lock();
        let login = logins.get(&key(secret)).filter(|login| login.expires > now)?;
        Some((login.who.clone(), login.expires))
    }

    /// Ends the login `secret`, returning whose it was.
    pub(crate) fn end(&self, secret: &str) -> Option<Principal> {
        self.lock().remove(&key(secret)).map(|login| login.who)
    }

    /// Logins in force (for tests and metrics).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn key(secret: &str) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
    key
}

/// The value of cookie `name` in a `Cookie` header (RFC 6265, 5.4: `a=1; b=2`).
pub(crate) fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal { user: "alice".into(), token: "0123456789abcdef".into() }
    }

    #[test]
    fn a_login_is_found_by_its_secret_until_it_ends_or_expires() {
        let logins = Logins::default();
        let started = logins.start(alice(), LIFETIME).unwrap();
        assert_eq!(started.secret.len(), 64);
        assert_eq!(logins.find(&started.secret).map(|(who, _)| who), Some(alice()));
        assert!(logins.find("not-a-login").is_none());
        assert_eq!(logins.end(&started.secret), Some(alice()));
        assert!(logins.find(&started.secret).is_none());
        let expired = logins.start(alice(), Duration::ZERO).unwrap();
        assert!(logins.find(&expired.secret).is_none());
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_logins_the_oldest_going_first() {
        let logins = Logins::default();
        let first = logins.start(alice(), LIFETIME).unwrap();
        for _ in 0..PER_USER * 3 {
            logins.start(alice(), LIFETIME).unwrap();
        }
        assert_eq!(logins.len(), PER_USER);
        assert!(logins.find(&first.secret).is_none());
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let header = Some("other=1; session-console-x=2; session-console=abc");
        assert_eq!(cookie(header, COOKIE), Some("abc"));
        assert_eq!(cookie(Some("session-console-x=2"), COOKIE), None);
        assert_eq!(cookie(None, COOKIE), None);
    }
}
