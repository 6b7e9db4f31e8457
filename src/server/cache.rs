//! A bounded cache whose entries expire: what the metrics endpoint remembers of TokenReview and
//! SubjectAccessReview answers. Keys are SHA-256 digests (a token itself is never kept).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A cache key: the SHA-256 digest of what identifies the entry.
pub(super) type Key = [u8; 32];

/// The SHA-256 digest of `bytes`.
pub(super) fn digest(bytes: &[u8]) -> Key {
    let mut key = [0u8; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    key
}

/// At most `capacity` entries, each until its own expiry.
#[derive(Debug)]
pub(super) struct TtlCache<V> {
    entries: HashMap<Key, (V, Instant)>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub(super) fn new(capacity: usize) -> Self {
        TtlCache { entries: HashMap::new(), capacity: capacity.max(1) }
    }

    /// The value of `key` if it has not expired at `now` (an expired one is dropped).
    pub(super) fn get(&mut self, key: &Key, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((value, until)) if *until > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `ttl`. When full, expired entries go first, then the one that would
    /// expire soonest.
    pub(super) fn insert(&mut self, key: Key, value: V, ttl: Duration, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= self.capacity {
                if let Some(soonest) = self.entries.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| *k) {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, (value, now + ttl));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_own_time() {
        let now = Instant::now();
        let mut cache = TtlCache::new(10);
        cache.insert(digest(b"a"), 1, Duration::from_secs(60), now);
        cache.insert(digest(b"b"), 2, Duration::from_secs(30), now);
        assert_eq!(cache.get(&digest(b"a"), now + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get(&digest(b"b"), now + Duration::from_secs(30)), None, "expired at its instant");
        assert_eq!(cache.get(&digest(b"a"), now + Duration::from_secs(60)), None);
        assert_eq!(cache.len(), 0, "expired entries are dropped when read");
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let now = Instant::now();
        let mut cache = TtlCache::new(100);
        // The first entry expires last: when full, the soonest to expire make room.
        cache.insert(digest(b"keep"), 0, Duration::from_secs(3600), now);
        for i in 0..1000u32 {
            cache.insert(digest(&i.to_be_bytes()), i, Duration::from_secs(60 + u64::from(i)), now);
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.get(&digest(b"keep"), now), Some(0));
        assert_eq!(cache.get(&digest(&999u32.to_be_bytes()), now), Some(999), "the newest is kept");
        assert_eq!(cache.get(&digest(&0u32.to_be_bytes()), now), None, "the soonest to expire went first");
        // Expired entries make room before live ones.
        let later = now + Duration::from_secs(2000);
        cache.insert(digest(b"new"), 7, Duration::from_secs(1), later);
        assert_eq!(cache.get(&digest(b"keep"), later), Some(0));
    }
}
