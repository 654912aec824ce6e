//! A concurrent cache of built overlays keyed by `(vCluster, seq)`, with a byte budget and
//! single-flight building: N concurrent requests for one missing key cause one build, and all of
//! them get its result.
//!
//! Invariants:
//! - `used_bytes` equals the sum of the weights of the cached entries and never exceeds the
//!   budget after an insert returns (least-recently-used entries are evicted; a value larger than
//!   the whole budget is returned to its caller but not cached);
//! - at most one build per key is in flight; a failed build is not cached: its error goes to
//!   every caller waiting on that flight, and the next request builds again;
//! - a builder that is cancelled (its future dropped) or panics ends its flight without a
//!   result; its waiters retry, and one of them becomes the next builder — nobody waits forever.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use config::{BootOverlay, Seq};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::watch;

use crate::error::BuildError;
use crate::limits::OVERLAY_CACHE_BUDGET_DEFAULT_BYTES;
use crate::{BuiltNodeDelta, OverlayKey};

/// How many bytes a cached value counts against the budget (its payload; per-entry bookkeeping
/// of a few dozen bytes is not counted).
pub trait Weigh {
    fn weight_bytes(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight_bytes(&self) -> usize {
        self.len()
    }
}

impl Weigh for BootOverlay {
    fn weight_bytes(&self) -> usize {
        self.compressed.len()
    }
}

impl Weigh for BuiltNodeDelta {
    fn weight_bytes(&self) -> usize {
        self.bytes.len()
    }
}

struct Slot<V> {
    value: V,
    /// Counted against the budget; fixed at insert.
    weight_bytes: usize,
    /// Tick of the last insert or hit: the entry with the smallest is evicted first.
    last_used_tick: AtomicU64,
}

/// One build in flight. Waiters subscribe to `result`; the builder sends exactly once, or drops
/// the sender (cancelled/panicked), which wakes the waiters to retry.
struct Flight<V, E> {
    result: watch::Sender<Option<Result<V, Arc<E>>>>,
}

/// The cache. `V` is what is stored (compressed overlay `Bytes` by default; `BootOverlay` keeps
/// hash and raw length with them); `E` is the build error, shared by all waiters as `Arc<E>`.
pub struct OverlayCache<V = Bytes, E = BuildError> {
    entries: DashMap<OverlayKey, Slot<V>>,
    flights: DashMap<OverlayKey, Arc<Flight<V, E>>>,
    budget_bytes: usize,
    /// Bytes of cached values. The lock also serializes inserts, removals and evictions so the
    /// count stays exact; hits only touch an atomic tick.
    used_bytes: Mutex<usize>,
    /// Logical clock for LRU order (no wall clock in this crate).
    tick: AtomicU64,
}

impl<V, E> Default for OverlayCache<V, E>
where
    V: Clone + Weigh,
{
    fn default() -> Self {
        Self::new(OVERLAY_CACHE_BUDGET_DEFAULT_BYTES)
    }
}

impl<V, E> OverlayCache<V, E>
where
    V: Clone + Weigh,
{
    /// An empty cache holding at most `budget_bytes` of values.
    pub fn new(budget_bytes: usize) -> Self {
        OverlayCache {
            entries: DashMap::new(),
            flights: DashMap::new(),
            budget_bytes,
            used_bytes: Mutex::new(0),
            tick: AtomicU64::new(0),
        }
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    pub fn used_bytes(&self) -> usize {
        *self.used_bytes.lock().expect("cache lock poisoned")
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of builds in flight.
    pub fn builds_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Number of callers waiting on the build of `key` (not counting the builder).
    pub fn waiters(&self, key: &OverlayKey) -> usize {
        self.flights
            .get(key)
            .map_or(0, |flight| flight.result.receiver_count())
    }

    fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// The cached value for `key`, marking it recently used.
    pub fn get(&self, key: &OverlayKey) -> Option<V> {
        let slot = self.entries.get(key)?;
        slot.last_used_tick
            .store(self.next_tick(), Ordering::Relaxed);
        Some(slot.value.clone())
    }

    /// Caches `value` under `key` (replacing any previous one), then evicts least-recently-used
    /// entries until the budget holds. Returns false, caching nothing, if `value` alone is
    /// larger than the budget.
    pub fn insert(&self, key: OverlayKey, value: V) -> bool {
        let weight_bytes = value.weight_bytes();
        if weight_bytes > self.budget_bytes {
            return false;
        }
        let mut used_bytes = self.used_bytes.lock().expect("cache lock poisoned");
        let slot = Slot {
            value,
            weight_bytes,
            last_used_tick: AtomicU64::new(self.next_tick()),
        };
        if let Some(old) = self.entries.insert(key.clone(), slot) {
            *used_bytes -= old.weight_bytes;
        }
        *used_bytes += weight_bytes;
        while *used_bytes > self.budget_bytes {
            let victim = self
                .entries
                .iter()
                .filter(|entry| entry.key() != &key)
                .min_by_key(|entry| entry.value().last_used_tick.load(Ordering::Relaxed))
                .map(|entry| entry.key().clone())
                .expect("over budget with only the new entry, which fits the budget alone");
            let (_, evicted) = self.entries.remove(&victim).expect("victim is cached");
            *used_bytes -= evicted.weight_bytes;
        }
        debug_assert!(*used_bytes <= self.budget_bytes);
        true
    }

    /// Removes `key`; returns whether it was cached.
    pub fn remove(&self, key: &OverlayKey) -> bool {
        let mut used_bytes = self.used_bytes.lock().expect("cache lock poisoned");
        match self.entries.remove(key) {
            Some((_, slot)) => {
                *used_bytes -= slot.weight_bytes;
                true
            }
            None => false,
        }
    }

    /// Removes every entry of `vcluster` older than `current_seq` (stale overlays: see
    /// [`crate::overlay_seq_is_stale`]). Returns how many were removed.
    pub fn remove_stale(&self, vcluster: &str, current_seq: Seq) -> usize {
        let stale: Vec<OverlayKey> = self
            .entries
            .iter()
            .filter(|entry| entry.key().vcluster == vcluster && entry.key().seq < current_seq)
            .map(|entry| entry.key().clone())
            .collect();
        stale.iter().filter(|key| self.remove(key)).count()
    }

    /// The value for `key`: from the cache, or from the build already in flight for it, or by
    /// running `build` (once, however many callers ask concurrently). A successful build is
    /// cached; a failed one is returned to every waiter and not cached, so the next call retries.
    pub async fn get_or_build<F, Fut>(&self, key: OverlayKey, build: F) -> Result<V, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut build = Some(build);
        loop {
            if let Some(value) = self.get(&key) {
                return Ok(value);
            }
            let flight = match self.flights.entry(key.clone()) {
                Entry::Occupied(occupied) => Err(occupied.get().result.subscribe()),
                Entry::Vacant(vacant) => {
                    let (sender, _) = watch::channel(None);
                    let flight = Arc::new(Flight { result: sender });
                    vacant.insert(Arc::clone(&flight));
                    Ok(flight)
                }
            };
            let flight = match flight {
                Ok(flight) => flight,
                Err(mut receiver) => match receiver.wait_for(Option::is_some).await {
                    Ok(result) => return result.clone().expect("waited for Some"),
                    // The builder went away without a result: retry, maybe as the builder.
                    Err(_) => continue,
                },
            };
            let guard = FlightGuard {
                flights: &self.flights,
                key: &key,
                flight,
            };
            // A flight for this key may have completed between our cache miss and our
            // registering this one: its value is cached by now.
            if let Some(value) = self.get(&key) {
                guard.complete(Ok(value.clone()));
                return Ok(value);
            }
            let build = build
                .take()
                .expect("a caller becomes the builder at most once: it returns after building");
            let result = build().await.map_err(Arc::new);
            if let Ok(value) = &result {
                // Cache before ending the flight, so a later caller finds one or the other.
                self.insert(key.clone(), value.clone());
            }
            guard.complete(result.clone());
            return result;
        }
    }
}

/// Ends a flight when the builder finishes, is cancelled or panics: removes it from the map
/// (only if it is still this flight), which drops the sender unless a result was sent first.
struct FlightGuard<'a, V, E> {
    flights: &'a DashMap<OverlayKey, Arc<Flight<V, E>>>,
    key: &'a OverlayKey,
    flight: Arc<Flight<V, E>>,
}

impl<V, E> FlightGuard<'_, V, E> {
    fn complete(self, result: Result<V, Arc<E>>) {
        self.flight.result.send_replace(Some(result));
        // Drop removes the flight.
    }
}

impl<V, E> Drop for FlightGuard<'_, V, E> {
    fn drop(&mut self) {
        self.flights
            .remove_if(self.key, |_, flight| Arc::ptr_eq(flight, &self.flight));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    fn key(vcluster: &str, seq: Seq) -> OverlayKey {
        OverlayKey {
            vcluster: vcluster.into(),
            seq,
        }
    }

    /// Yields until `condition` holds; fails the test after 10 s instead of hanging.
    async fn until(mut condition: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !condition() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("condition reached within 10 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_concurrent_requests_cause_exactly_one_build() {
        let cache: Arc<OverlayCache<Bytes, String>> = Arc::new(OverlayCache::new(1 << 20));
        let builds = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let k = key("compute", 7);
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, builds, gate, k) =
                    (cache.clone(), builds.clone(), gate.clone(), k.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_build(k, || async move {
                            builds.fetch_add(1, Ordering::SeqCst);
                            let _permit = gate.acquire().await.unwrap();
                            Ok(Bytes::from_static(b"overlay"))
                        })
                        .await
                })
            })
            .collect();
        // Hold the build until every other request is waiting on it.
        until(|| cache.waiters(&k) == 999).await;
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        gate.add_permits(1);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Bytes::from_static(b"overlay"));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(cache.builds_in_flight(), 0);
        assert_eq!(cache.get(&k).unwrap(), Bytes::from_static(b"overlay"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_build_reaches_every_waiter_and_the_next_request_retries() {
        let cache: Arc<OverlayCache<Bytes, String>> = Arc::new(OverlayCache::new(1 << 20));
        let builds = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let k = key("gpu", 3);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cache, builds, gate, k) =
                    (cache.clone(), builds.clone(), gate.clone(), k.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_build(k, || async move {
                            builds.fetch_add(1, Ordering::SeqCst);
                            let _permit = gate.acquire().await.unwrap();
                            Err::<Bytes, _>("leader unreachable".to_owned())
                        })
                        .await
                })
            })
            .collect();
        until(|| cache.waiters(&k) == 99).await;
        gate.add_permits(1);
        for task in tasks {
            assert_eq!(*task.await.unwrap().unwrap_err(), "leader unreachable");
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(cache.get(&k).is_none(), "errors are not cached");

        let value = cache
            .get_or_build(k.clone(), || async {
                builds.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(Bytes::from_static(b"rebuilt"))
            })
            .await
            .unwrap();
        assert_eq!(value, Bytes::from_static(b"rebuilt"));
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_builder_hands_the_build_to_a_waiter() {
        let cache: Arc<OverlayCache<Bytes, String>> = Arc::new(OverlayCache::new(1 << 20));
        let k = key("compute", 1);
        let stuck = {
            let (cache, k) = (cache.clone(), k.clone());
            tokio::spawn(async move {
                cache
                    .get_or_build(k, std::future::pending::<Result<Bytes, String>>)
                    .await
            })
        };
        until(|| cache.builds_in_flight() == 1).await;
        let builds = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let (cache, builds, k) = (cache.clone(), builds.clone(), k.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_build(k, || async move {
                            builds.fetch_add(1, Ordering::SeqCst);
                            Ok(Bytes::from_static(b"second try"))
                        })
                        .await
                })
            })
            .collect();
        until(|| cache.waiters(&k) == 10).await;
        stuck.abort();
        for waiter in waiters {
            assert_eq!(
                waiter.await.unwrap().unwrap(),
                Bytes::from_static(b"second try")
            );
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_cached_key_is_not_built_again() {
        let cache: OverlayCache<Bytes, String> = OverlayCache::default();
        assert_eq!(cache.budget_bytes(), OVERLAY_CACHE_BUDGET_DEFAULT_BYTES);
        cache.insert(key("compute", 1), Bytes::from_static(b"x"));
        let value = cache
            .get_or_build(key("compute", 1), || async {
                panic!("must not build a cached key")
            })
            .await
            .unwrap();
        assert_eq!(value, Bytes::from_static(b"x"));
    }

    fn blob(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn over_budget_the_least_recently_used_entry_is_evicted() {
        let cache: OverlayCache = OverlayCache::new(300);
        for seq in 1..=3 {
            assert!(cache.insert(key("compute", seq), blob(100)));
        }
        assert_eq!(cache.used_bytes(), 300);
        cache.get(&key("compute", 1)).unwrap(); // seq 2 is now least recently used
        cache.insert(key("compute", 4), blob(100));
        assert!(cache.get(&key("compute", 2)).is_none());
        for seq in [1, 3, 4] {
            assert!(cache.get(&key("compute", seq)).is_some(), "seq {seq}");
        }
        assert_eq!(cache.used_bytes(), 300);

        // A big insert evicts as many as needed; replacing a key re-weighs it.
        cache.insert(key("gpu", 1), blob(250));
        assert_eq!(cache.len(), 1);
        cache.insert(key("gpu", 1), blob(10));
        assert_eq!(cache.used_bytes(), 10);

        // A value larger than the whole budget is not cached and evicts nothing.
        assert!(!cache.insert(key("gpu", 2), blob(301)));
        assert_eq!((cache.len(), cache.used_bytes()), (1, 10));
    }

    #[test]
    fn stale_entries_of_one_vcluster_are_removed() {
        let cache: OverlayCache = OverlayCache::new(1000);
        for seq in 1..=3 {
            cache.insert(key("compute", seq), blob(10));
            cache.insert(key("gpu", seq), blob(10));
        }
        assert_eq!(cache.remove_stale("compute", 3), 2);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.used_bytes(), 40);
        assert!(cache.remove(&key("gpu", 1)));
        assert!(!cache.remove(&key("gpu", 1)));
        assert_eq!(cache.used_bytes(), 30);
    }
}
