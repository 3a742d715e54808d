//! How long recordings are kept: those older than [`Config::max_age`] go, then, while all of
//! them together take more than [`Config::max_total`] bytes, the oldest. A recording being
//! written here is never removed (it counts towards the total). One that was never ended (its
//! relay was killed) is removed like an ended one, unless its file changed within the last
//! hour: another relay on the same store may still be writing it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::Config;
use super::index;
use crate::store::{Store, StoreError};

/// A recording not ended and not held here is taken for another relay's while its file
/// changed within this long.
const STILL_WRITTEN: Duration = Duration::from_secs(3600);

/// Applies the retention at `now`; `held` are the recordings this relay is writing, `held_size`
/// their bytes. Returns how many went.
pub(crate) fn prune(
    store: &Store,
    config: &Config,
    held: &HashSet<&str>,
    held_size: u64,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let unix_now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let cutoff = unix_now - config.max_age.as_secs_f64();
    let rows = index::by_age(store)?;
    let others: u64 = rows.iter().filter(|row| !held.contains(row.id.as_str())).map(|row| row.size).sum();
    let mut total = held_size + others;
    let mut removed = 0;
    for row in rows {
        if held.contains(row.id.as_str()) {
            continue;
        }
        let old = row.started < cutoff;
        let over = total > config.max_total;
        if !old && !over {
            // By age, newer ones stay; by size, the total is within the bound now.
            break;
        }
        let abandoned = row.ended.is_some()
            || row.path.as_deref().is_none_or(|path| {
                let changed = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                changed.and_then(|t| now.duration_since(t).ok()).is_none_or(|age| age >= STILL_WRITTEN)
            });
        if !abandoned {
            continue;
        }
        index::remove(store, &row.id)?;
        total = total.saturating_sub(row.size);
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::recording::index::Entry;

    fn entry(id: &str, started: f64, size: u64, path: Option<PathBuf>) -> Entry {
        Entry {
            id: id.to_owned(),
            user: "alice".into(),
            instance: "i-1".into(),
            account: "default".into(),
            kind: "shell".into(),
            mode: "full".into(),
            input: false,
            started,
            ended: Some(started + 1.0),
            path,
            size,
            chunks: Some(1),
            sha256: None,
            unrecorded: 0,
            record: None,
        }
    }

    fn ids(store: &Store) -> Vec<String> {
        let mut ids: Vec<String> = index::list(store, 100).unwrap().into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_oldest_go_by_age_then_by_total_size_and_held_ones_stay_on_sqlite() {
        the_oldest_go_by_age_then_by_total_size_and_held_ones_stay(Store::in_memory().unwrap(), "sqlite");
    }

    #[test]
    fn the_oldest_go_by_age_then_by_total_size_and_held_ones_stay_on_postgres() {
        let store = Store::connect(&session_test_kit::postgres::database()).unwrap();
        the_oldest_go_by_age_then_by_total_size_and_held_ones_stay(store, "postgres");
    }

    fn the_oldest_go_by_age_then_by_total_size_and_held_ones_stay(store: Store, backend: &str) {
        let dir = std::env::temp_dir().join(format!("retention-{}-{backend}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let now = SystemTime::now();
        let unix = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
        let cast = dir.join("old.cast");
        std::fs::write(&cast, "x").unwrap();
        std::fs::write(dir.join("old.chain"), "x").unwrap();
        index::insert(&store, &entry("old", unix - 100.0 * 86_400.0, 10, Some(cast.clone()))).unwrap();
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            index::insert(&store, &entry(id, unix - 1000.0 + i as f64, 100, None)).unwrap();
        }
        let mut config = Config::new(dir.clone());
        config.max_total = 250;
        let held = HashSet::from(["a"]);
        // 400 bytes less "old": "a" is held and stays; "b" and "c" go to bring 400 to 200.
        let removed = prune(&store, &config, &held, 100, now).unwrap();
        assert_eq!(removed, 3);
        assert_eq!(ids(&store), ["a", "d"]);
        assert!(!cast.exists() && !dir.join("old.chain").exists(), "its files went with it");
        assert_eq!(prune(&store, &config, &held, 100, now).unwrap(), 0, "within both bounds");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
