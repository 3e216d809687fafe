//! Values that a component's successive instances share, one per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

type Value = Arc<dyn Any + Send + Sync>;

/// A small type map; looked up when an instance starts, not per event.
#[derive(Default)]
pub(super) struct Carried(Mutex<HashMap<TypeId, Value>>);

impl Carried {
    /// The component's `T`, made on first use.
    pub(super) fn get_or_default<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.0.lock();
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Value);
        match entry.clone().downcast::<T>() {
            Ok(v) => v,
            // Unreachable (the key is T's own id); a fresh value keeps the
            // caller working rather than panicking.
            Err(_) => {
                let fresh = Arc::new(T::default());
                *entry = fresh.clone();
                fresh
            }
        }
    }
}

impl fmt::Debug for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Carried({} values)", self.0.lock().len())
    }
}
