//! The point-in-time join's table of integer entity keys: open addressing with linear probing
//! over 32-byte slots (two per cache line), each slot holding the key, its dense id and its
//! span of queries, so that a source row's lookup touches one cache line. The table is built
//! once from the entity side and then only read; [`KeyTable::prefetch`] lets a scan ask for a
//! later row's slot while it handles the current one (the table is far larger than the caches,
//! and a lookup is otherwise a memory round trip per row).

use crate::historical::Span;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    key: i64,
    span: Span,
    /// `u32::MAX`: empty.
    id: u32,
}

const EMPTY: Slot = Slot {
    key: 0,
    span: Span::EMPTY,
    id: u32::MAX,
};

/// Integer keys → dense ids (in insertion order) and spans.
#[derive(Debug)]
pub(crate) struct KeyTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable::with_capacity(0)
    }
}

/// A strong 64-bit mixer (the finalizer of MurmurHash3): sequential and strided keys spread
/// over the whole table.
fn mix(k: i64) -> u64 {
    let mut h = k as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl KeyTable {
    /// A table for about `n` keys (it grows past them).
    pub(crate) fn with_capacity(n: usize) -> Self {
        // Load factor at most 5/8: short probe sequences.
        let cap = (n * 8 / 5 + 1).next_power_of_two().max(16);
        KeyTable {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn home(&self, k: i64) -> usize {
        mix(k) as usize & self.mask
    }

    /// The id of `k`, a new one (the next in order, with an empty span) if it is new.
    pub(crate) fn insert(&mut self, k: i64) -> u32 {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        let mut i = self.home(k);
        loop {
            let s = &mut self.slots[i];
            if s.id == u32::MAX {
                *s = Slot {
                    key: k,
                    span: Span::EMPTY,
                    id: self.len as u32,
                };
                self.len += 1;
                return s.id;
            }
            if s.key == k {
                return s.id;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; (self.mask + 1) * 2]);
        self.mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.id != u32::MAX) {
            let mut i = self.home(s.key);
            while self.slots[i].id != u32::MAX {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = s;
        }
    }

    /// `k`'s id and span, if the table has it.
    #[inline]
    pub(crate) fn get(&self, k: i64) -> Option<(u32, Span)> {
        let mut i = self.home(k);
        loop {
            let s = &self.slots[i];
            if s.id == u32::MAX {
                return None;
            }
            if s.key == k {
                return Some((s.id, s.span));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Asks the CPU to bring `k`'s slot into the cache (a hint: no effect on results).
    #[inline]
    pub(crate) fn prefetch(&self, k: i64) {
        prefetch(&self.slots[self.home(k)]);
    }

    /// Sets every key's span: `f(id)`.
    pub(crate) fn set_spans(&mut self, f: impl Fn(u32) -> Span) {
        for s in self.slots.iter_mut().filter(|s| s.id != u32::MAX) {
            s.span = f(s.id);
        }
    }
}

/// Asks the CPU to bring the cache line holding `*r` into the cache; a hint without effect on
/// results (a no-op on targets without a stable prefetch instruction).
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees; the address is that
    // of a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a std map, through growth, for sequential, strided, negative and extreme keys.
    #[test]
    fn agrees_with_a_map() {
        let mut t = KeyTable::with_capacity(3);
        let mut m = std::collections::HashMap::new();
        let keys: Vec<i64> = (0..5000)
            .map(|i| i * 1024)
            .chain(0..3000)
            .chain([i64::MIN, i64::MAX, -1, 0, -5000])
            .chain((0..2000).map(|i| -(i * 7919)))
            .collect();
        for &k in &keys {
            let next = m.len() as u32;
            let id = *m.entry(k).or_insert(next);
            assert_eq!(t.insert(k), id, "key {k}");
        }
        assert_eq!(t.len(), m.len());
        t.set_spans(|id| Span {
            start: id * 2,
            len: id % 3,
            first_t: -(id as i64),
        });
        for (&k, &id) in &m {
            t.prefetch(k);
            let (got, span) = t.get(k).unwrap();
            assert_eq!(got, id);
            assert_eq!(
                (span.start, span.len, span.first_t),
                (id * 2, id % 3, -(id as i64))
            );
        }
        for k in [1, 3, 1023, 5000 * 1024, i64::MIN + 1] {
            assert_eq!(t.get(k).map(|(id, _)| id), m.get(&k).copied(), "key {k}");
        }
        assert!(t.get(123_456_789).is_none());
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }
}
