//! The object store behind the fake API server: current objects, a
//! monotonically increasing resourceVersion, and the change history that
//! watches resume from.
//!
//! # Design
//!
//! Like etcd behind a real API server, every change gets the next
//! resourceVersion and is kept in a history. The store also keeps a *base*:
//! the state at the compaction point. Any past state at or after that point is
//! the base plus the history up to it, which is how paginated lists stay
//! consistent (every page is served from the state at the first page's
//! resourceVersion) and how watches resume. Compacting moves the base to now
//! and forgets the history, so resuming from an older resourceVersion gets 410
//! Gone, as from a real server whose history was compacted.
//!
//! Objects are kept as JSON, so tests can also store objects that do not
//! match the typed schema. Every change is broadcast to open watches while the
//! store lock is held, so a watch that subscribes under the lock misses
//! nothing between its catch-up and its live events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::resource::Resource;

/// How many signals an open watch may fall behind before it is ended with
/// 410 Gone, like a slow watcher of a real server.
const WATCH_BUFFER: usize = 8192;

/// Where an object lives: type, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) resource: Resource,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

/// One change: the object before and after (`None` when absent).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) key: Key,
    pub(crate) old: Option<Value>,
    pub(crate) new: Option<Value>,
}

/// What open watches are told.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// An object changed.
    Change(Arc<Change>),
    /// Send a BOOKMARK at this resourceVersion (to watches that allow them).
    Bookmark(u64),
    /// End with an ERROR event carrying 410 Expired.
    Expire,
    /// Cut the connection without ending the response properly.
    Drop,
}

/// The requested resourceVersion is older than the compacted history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    pub(crate) requested: u64,
    pub(crate) oldest: u64,
}

/// The store; guarded by one mutex in the server.
#[derive(Debug)]
pub(crate) struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    base: BTreeMap<Key, Value>,
    compacted: u64,
    history: Vec<Arc<Change>>,
    signals: broadcast::Sender<Signal>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            // Start somewhere other than 0 or 1 so tests never confuse a
            // resourceVersion with a count.
            resource_version: 100,
            objects: BTreeMap::new(),
            base: BTreeMap::new(),
            compacted: 100,
            history: Vec::new(),
            signals: broadcast::channel(WATCH_BUFFER).0,
        }
    }
}

impl Store {
    /// The newest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The oldest resourceVersion a watch can resume from.
    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    /// A new receiver of signals; take it under the same lock as the catch-up.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// Sends a signal to every open watch.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = self.signals.send(signal);
    }

    /// The current object at `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Creates or replaces the object at `key` with `object` (whose
    /// `metadata.name`/`namespace` must already agree with `key`). Returns the
    /// stored object. Storing an identical object is a no-op, as on a real
    /// server.
    pub(crate) fn put(&mut self, key: Key, mut object: Value) -> Value {
        let old = self.objects.get(&key).cloned();
        set_type_meta(&mut object, key.resource);
        if let Some(old) = &old {
            copy_meta(old, &mut object, "uid");
            copy_meta(old, &mut object, "creationTimestamp");
            copy_meta(old, &mut object, "resourceVersion");
            if *old == object {
                return object;
            }
        }
        self.resource_version += 1;
        let rv = self.resource_version;
        let meta = metadata(&mut object);
        meta.insert("resourceVersion".into(), rv.to_string().into());
        if old.is_none() {
            meta.insert(
                "uid".into(),
                format!("00000000-0000-0000-0000-{rv:012}").into(),
            );
            meta.insert("creationTimestamp".into(), "2026-01-01T00:00:00Z".into());
        }
        self.objects.insert(key.clone(), object.clone());
        self.record(Change {
            resource_version: rv,
            key,
            old,
            new: Some(object.clone()),
        });
        object
    }

    /// Deletes the object at `key`; returns it as last stored.
    pub(crate) fn delete(&mut self, key: &Key) -> Option<Value> {
        let old = self.objects.remove(key)?;
        self.resource_version += 1;
        self.record(Change {
            resource_version: self.resource_version,
            key: key.clone(),
            old: Some(old.clone()),
            new: None,
        });
        Some(old)
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push(change.clone());
        self.signal(Signal::Change(change));
    }

    /// Forgets the history: resuming from any resourceVersion older than
    /// the current one gets 410 Gone from now on.
    pub(crate) fn compact(&mut self) {
        self.base = self.objects.clone();
        self.compacted = self.resource_version;
        self.history.clear();
    }

    /// The objects of `resource` (in `namespace`, or all) as they were at
    /// `resource_version` (`None`: now), in key order.
    pub(crate) fn snapshot(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        resource_version: Option<u64>,
    ) -> Result<Vec<(Key, Value)>, Expired> {
        let wanted =
            |key: &Key| key.resource == resource && namespace.is_none_or(|ns| key.namespace == ns);
        let objects = match resource_version {
            None => self.objects.clone(),
            Some(rv) if rv >= self.resource_version => self.objects.clone(),
            Some(rv) if rv < self.compacted => {
                return Err(Expired {
                    requested: rv,
                    oldest: self.compacted,
                });
            }
            Some(rv) => {
                let mut state = self.base.clone();
                for change in self.history.iter().take_while(|c| c.resource_version <= rv) {
                    match &change.new {
                        Some(new) => state.insert(change.key.clone(), new.clone()),
                        None => state.remove(&change.key),
                    };
                }
                state
            }
        };
        Ok(objects.into_iter().filter(|(key, _)| wanted(key)).collect())
    }

    /// The changes after `resource_version`, for a watch resuming from it.
    pub(crate) fn changes_since(&self, resource_version: u64) -> Result<Vec<Arc<Change>>, Expired> {
        if resource_version < self.compacted {
            return Err(Expired {
                requested: resource_version,
                oldest: self.compacted,
            });
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.resource_version > resource_version)
            .cloned()
            .collect())
    }
}

/// Sets `apiVersion` and `kind` as stored (lists strip them again).
fn set_type_meta(object: &mut Value, resource: Resource) {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), resource.api_version().into());
        map.insert("kind".into(), resource.kind().into());
    }
}

fn copy_meta(from: &Value, to: &mut Value, field: &str) {
    if let Some(value) = from.pointer(&format!("/metadata/{field}")) {
        metadata(to).insert(field.into(), value.clone());
    }
}

/// `metadata` of an object, created when missing.
fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Default::default());
    }
    let map = object.as_object_mut().expect("object");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        *meta = Value::Object(Default::default());
    }
    meta.as_object_mut().expect("metadata object")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> Key {
        Key {
            resource: Resource::Services,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn svc(name: &str, port: u16) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"ports": [{"port": port}]}})
    }

    #[test]
    fn versions_increase_and_identical_puts_are_no_ops() {
        let mut store = Store::default();
        let start = store.resource_version();
        let a = store.put(key("a"), svc("a", 80));
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        assert_eq!(a["kind"], json!("Service"));
        store.put(key("a"), svc("a", 80));
        assert_eq!(store.resource_version(), start + 1);
        let a2 = store.put(key("a"), svc("a", 81));
        assert_eq!(a2["metadata"]["uid"], a["metadata"]["uid"]);
        assert_eq!(store.resource_version(), start + 2);
        assert!(store.delete(&key("a")).is_some());
        assert!(store.delete(&key("a")).is_none());
        assert_eq!(store.resource_version(), start + 3);
    }

    #[test]
    fn snapshots_replay_history_until_compacted() {
        let mut store = Store::default();
        store.put(key("a"), svc("a", 80));
        let after_a = store.resource_version();
        store.put(key("b"), svc("b", 80));
        store.delete(&key("a"));
        let names = |items: Vec<(Key, Value)>| -> Vec<String> {
            items.into_iter().map(|(k, _)| k.name).collect()
        };
        let then = store.snapshot(Resource::Services, Some("ns"), Some(after_a));
        assert_eq!(names(then.unwrap()), ["a"]);
        assert_eq!(
            names(store.snapshot(Resource::Services, None, None).unwrap()),
            ["b"]
        );
        assert!(
            store
                .snapshot(Resource::EndpointSlices, None, None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.changes_since(after_a).unwrap().len(), 2);

        store.compact();
        let expired = store.changes_since(after_a).unwrap_err();
        assert_eq!(expired.oldest, store.resource_version());
        assert!(
            store
                .snapshot(Resource::Services, None, Some(after_a))
                .is_err()
        );
        assert!(
            store
                .changes_since(store.resource_version())
                .unwrap()
                .is_empty()
        );
    }
}
