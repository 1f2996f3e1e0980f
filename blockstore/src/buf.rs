//! Owned, 4 KiB-aligned I/O buffers.
//!
//! A buffer moves into a device operation and comes back in its completion (the ownership model
//! io_uring needs), and a read buffer can be handed on to a socket without copying. Buffers come
//! either from the heap or from a [`BufPool`]: a fixed set of slots per size class, allocated once
//! and registered with a shard's ring (io_uring fixed buffers), so hot-path I/O neither allocates
//! nor pins pages. A pooled buffer returns its slot to the pool when dropped, from any thread.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// Every device offset and length is a multiple of this, and every buffer is aligned to it.
pub const SECTOR_BYTES: usize = 4096;

/// Rounds `n` up to a whole number of sectors.
pub const fn round_up_sectors(n: usize) -> usize {
    n.div_ceil(SECTOR_BYTES) * SECTOR_BYTES
}

enum Origin {
    Heap { layout: Layout },
    Pool { pool: Arc<PoolInner>, class: usize, slot: u32 },
}

/// An owned, sector-aligned byte buffer whose length is a multiple of [`SECTOR_BYTES`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    origin: Origin,
}

// SAFETY: an AlignedBuf exclusively owns its memory (heap allocation or pool slot); nothing else
// reads or writes it while the buffer lives, so moving it to another thread is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only allow reads of memory the buffer exclusively owns.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed heap buffer of `len` bytes (rounded up to whole sectors, at least one sector).
    pub fn zeroed(len: usize) -> AlignedBuf {
        let len = round_up_sectors(len.max(1));
        let layout = Layout::from_size_align(len, SECTOR_BYTES).expect("sector layout is valid");
        // SAFETY: layout has non-zero size (len >= SECTOR_BYTES).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        AlignedBuf { ptr, len, origin: Origin::Heap { layout } }
    }

    /// A heap buffer holding `parts` one after the other, zero-padded to whole sectors. Each byte
    /// is written once (no zeroing pass before the copy: this is the fill path of every fetched
    /// block).
    pub fn from_parts(parts: &[&[u8]]) -> AlignedBuf {
        let data_len: usize = parts.iter().map(|p| p.len()).sum();
        let len = round_up_sectors(data_len.max(1));
        let layout = Layout::from_size_align(len, SECTOR_BYTES).expect("sector layout is valid");
        // SAFETY: layout has non-zero size (len >= SECTOR_BYTES).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        let mut at = 0;
        for p in parts {
            // SAFETY: `at + p.len() <= data_len <= len`, inside the fresh allocation, which no
            // source slice can overlap.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), ptr.as_ptr().add(at), p.len()) };
            at += p.len();
        }
        // SAFETY: the tail `data_len..len` is inside the allocation; after this every byte of it
        // is initialised, which `as_slice` relies on.
        unsafe { std::ptr::write_bytes(ptr.as_ptr().add(data_len), 0, len - data_len) };
        AlignedBuf { ptr, len, origin: Origin::Heap { layout } }
    }

    /// A heap buffer holding `data`, zero-padded to whole sectors.
    pub fn from_slice(data: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(data.len());
        buf.as_mut_slice()[..data.len()].copy_from_slice(data);
        buf
    }

    /// Length in bytes (a multiple of [`SECTOR_BYTES`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: buffers hold at least one sector.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr points to `len` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr points to `len` initialised bytes exclusively owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The io_uring fixed-buffer index of this buffer's slot, when it comes from a registered
    /// pool ([`BufPool::iovecs`] order).
    pub fn registered_index(&self) -> Option<u16> {
        match &self.origin {
            Origin::Heap { .. } => None,
            Origin::Pool { pool, class, slot } => {
                let index = pool.classes[*class].first_index + *slot as usize;
                u16::try_from(index).ok()
            }
        }
    }

    /// Shortens the visible length to `len` bytes (rounded up to whole sectors).
    pub fn truncate(&mut self, len: usize) {
        let len = round_up_sectors(len.max(1));
        assert!(len <= self.capacity(), "truncate beyond capacity");
        self.len = len;
    }

    /// Bytes available in the underlying allocation or slot.
    pub fn capacity(&self) -> usize {
        match &self.origin {
            Origin::Heap { layout } => layout.size(),
            Origin::Pool { pool, class, .. } => pool.classes[*class].slot_bytes,
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        match &self.origin {
            Origin::Heap { layout } => {
                // SAFETY: allocated in `zeroed` with exactly this layout.
                unsafe { alloc::dealloc(self.ptr.as_ptr(), *layout) }
            }
            Origin::Pool { pool, class, slot } => {
                // The queue holds every slot of the class, so it cannot be full here.
                let pushed = pool.classes[*class].free.push(*slot);
                debug_assert!(pushed.is_ok(), "pool slot returned twice");
            }
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("registered_index", &self.registered_index())
            .finish()
    }
}

struct PoolClass {
    slot_bytes: usize,
    slots: u32,
    base: NonNull<u8>,
    layout: Layout,
    first_index: usize,
    free: ArrayQueue<u32>,
}

struct PoolInner {
    classes: Vec<PoolClass>,
}

// SAFETY: the raw base pointers are only dereferenced through AlignedBufs that own a slot
// exclusively (handed out once through the lock-free free queue).
unsafe impl Send for PoolInner {}
// SAFETY: as above; the free queues are thread-safe.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        for class in &self.classes {
            // SAFETY: allocated in BufPool::new with this layout; every AlignedBuf holding a slot
            // keeps an Arc to self, so none is alive here.
            unsafe { alloc::dealloc(class.base.as_ptr(), class.layout) }
        }
    }
}

/// A size class of a [`BufPool`]: `slots` buffers of `slot_bytes` each.
#[derive(Clone, Copy, Debug)]
pub struct PoolClassSpec {
    pub slot_bytes: usize,
    pub slots: u32,
}

/// Preallocated buffer slots in a few size classes, registrable as io_uring fixed buffers.
#[derive(Clone)]
pub struct BufPool {
    inner: Arc<PoolInner>,
}

impl BufPool {
    /// Allocates every slot up front. Classes should be given smallest first; a request takes the
    /// smallest class that fits.
    pub fn new(specs: &[PoolClassSpec]) -> BufPool {
        let mut classes = Vec::with_capacity(specs.len());
        let mut first_index = 0;
        for spec in specs {
            let slot_bytes = round_up_sectors(spec.slot_bytes.max(1));
            let slots = spec.slots.max(1);
            let total = slot_bytes * slots as usize;
            let layout = Layout::from_size_align(total, SECTOR_BYTES).expect("pool layout is valid");
            // SAFETY: layout has non-zero size.
            let raw = unsafe { alloc::alloc_zeroed(layout) };
            let Some(base) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
            let free = ArrayQueue::new(slots as usize);
            for slot in 0..slots {
                let _ = free.push(slot);
            }
            classes.push(PoolClass { slot_bytes, slots, base, layout, first_index, free });
            first_index += slots as usize;
        }
        BufPool { inner: Arc::new(PoolInner { classes }) }
    }

    /// A pooled buffer of at least `len` bytes, or a heap buffer when no slot is free.
    pub fn get(&self, len: usize) -> AlignedBuf {
        self.try_get(len).unwrap_or_else(|| AlignedBuf::zeroed(len))
    }

    /// A pooled buffer of at least `len` bytes (length set to `len` rounded to sectors), if a slot
    /// of a fitting class is free. Contents are whatever the slot last held.
    pub fn try_get(&self, len: usize) -> Option<AlignedBuf> {
        let want = round_up_sectors(len.max(1));
        for (class_index, class) in self.inner.classes.iter().enumerate() {
            if class.slot_bytes < want {
                continue;
            }
            if let Some(slot) = class.free.pop() {
                // SAFETY: slot < class.slots, so the offset stays inside the class allocation.
                let ptr = unsafe { class.base.as_ptr().add(slot as usize * class.slot_bytes) };
                let ptr = NonNull::new(ptr).expect("pool slot pointer is non-null");
                return Some(AlignedBuf {
                    ptr,
                    len: want,
                    origin: Origin::Pool { pool: self.inner.clone(), class: class_index, slot },
                });
            }
        }
        None
    }

    /// One `iovec` per slot, in registered-index order, for `io_uring_register_buffers`.
    /// The memory stays valid as long as any clone of this pool lives.
    pub fn iovecs(&self) -> Vec<libc::iovec> {
        let mut out = Vec::new();
        for class in &self.inner.classes {
            for slot in 0..class.slots as usize {
                out.push(libc::iovec {
                    // SAFETY: slot < class.slots; stays inside the class allocation.
                    iov_base: unsafe { class.base.as_ptr().add(slot * class.slot_bytes) }.cast(),
                    iov_len: class.slot_bytes,
                });
            }
        }
        out
    }

    /// Slots free in each class, smallest class first.
    pub fn free_slots(&self) -> Vec<usize> {
        self.inner.classes.iter().map(|c| c.free.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buffers_are_aligned_and_rounded() {
        let buf = AlignedBuf::zeroed(10);
        assert_eq!(buf.len(), SECTOR_BYTES);
        assert_eq!(buf.as_ptr() as usize % SECTOR_BYTES, 0);
        assert!(buf.as_slice().iter().all(|b| *b == 0));
        assert_eq!(buf.registered_index(), None);
    }

    #[test]
    fn pool_slots_return_on_drop_and_fall_back_to_heap() {
        let pool = BufPool::new(&[
            PoolClassSpec { slot_bytes: 4096, slots: 2 },
            PoolClassSpec { slot_bytes: 65536, slots: 1 },
        ]);
        assert_eq!(pool.iovecs().len(), 3);
        let a = pool.get(100);
        let b = pool.get(4096);
        assert_eq!(a.registered_index(), Some(0));
        assert_eq!(b.registered_index(), Some(1));
        // the small class is exhausted: the next small request takes the larger class
        let c = pool.get(1);
        assert_eq!(c.registered_index(), Some(2));
        assert_eq!(c.len(), 4096);
        assert_eq!(c.capacity(), 65536);
        // everything exhausted: heap
        let d = pool.get(1);
        assert_eq!(d.registered_index(), None);
        drop(a);
        assert_eq!(pool.free_slots(), vec![1, 0]);
        let e = pool.get(1);
        assert_eq!(e.registered_index(), Some(0));
        assert_eq!(e.as_ptr() as usize % SECTOR_BYTES, 0);
        drop((b, c, d, e));
        assert_eq!(pool.free_slots(), vec![2, 1]);
    }

    #[test]
    fn buffers_cross_threads() {
        let pool = BufPool::new(&[PoolClassSpec { slot_bytes: 4096, slots: 1 }]);
        let mut buf = pool.get(4096);
        buf.as_mut_slice()[0] = 7;
        let handle = std::thread::spawn(move || buf.as_slice()[0]);
        assert_eq!(handle.join().expect("thread"), 7);
        assert_eq!(pool.free_slots(), vec![1]);
    }
}
