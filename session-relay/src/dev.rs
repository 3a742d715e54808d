//! Development accounts, for the demo and tests: a user whom a policy allows everything.

use std::time::Duration;

use crate::store::{Store, StoreError};

/// The policy of a development account: every action on every resource.
pub const FULL_ACCESS: &str =
    r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"session:*","Resource":"*"}]}"#;

/// Makes `user` (if absent) with the `full-access` policy attached, and returns a new token for
/// them valid for `ttl`.
pub fn full_access_user(store: &Store, user: &str, ttl: Duration) -> Result<String, StoreError> {
    if !store.users()?.iter().any(|(name, _)| name == user) {
        store.add_user(user)?;
    }
    store.put_policy("full-access", FULL_ACCESS)?;
    store.attach(user, "full-access")?;
    Ok(store.create_token(user, ttl)?.0)
}
