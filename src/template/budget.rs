//! The memory budget of the template engine: one bound on what any expression builds, filters
//! and operators alike (`(peers * 10**6) | string`, `| lower`, `| list`, `sum(start='')`,
//! `'x' * 10**9`, `peers * 10**7 == []`...).
//!
//! Fuel counts the engine's instructions, not the bytes a single filter or operator builds, so
//! a one-instruction expression could still take hundreds of megabytes (or, building strings
//! quadratically, run for minutes). Rather than guess each filter's cost, the allocator counts:
//! while the engine runs on a thread ([`Meter::enter`], held by the engine guard), every byte
//! it allocates is charged twice, to the bytes live now (limit [`LIVE_BYTES`]) and to the
//! bytes allocated in all (limit [`TOTAL_BYTES`], which bounds the time a quadratic build or a
//! walk over a huge lazy list can take). Past either limit the process prints one
//! `peerconf: error:` line naming the template and exits 3 at once. Rendering happens in
//! memory before anything is written (render stages its files only after every template
//! rendered; `check` writes its files at the end), so nothing is half-written by that exit.
//!
//! The allocator is [`Budgeted`], installed by `main.rs`; a build without it (the library's
//! unit tests) simply does not count.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// The most bytes the engine may hold live at once while rendering one template or evaluating
/// one assertion: the 16 MiB output limit plus 8 MiB of working room. With the process's own
/// few MiB this fits the manifests' 32Mi memory limit.
pub const LIVE_BYTES: usize = 24 * 1024 * 1024;

/// The most bytes one document (every string of a JSON template, or a text template; one
/// assertion) may allocate in all, freed or not: about a second of copying.
pub const TOTAL_BYTES: usize = 512 * 1024 * 1024;

struct State {
    /// Charging (the engine runs on this thread).
    active: Cell<bool>,
    /// Bytes allocated minus bytes freed since [`Meter::enter`] (memory that existed before
    /// and is freed during the run makes it go down: that is fine, it was the process's).
    live: Cell<isize>,
    /// Bytes allocated since [`Meter::enter`].
    total: Cell<usize>,
    /// [`TOTAL_BYTES`] minus what earlier runs of the same document used.
    total_limit: Cell<usize>,
}

thread_local! {
    static STATE: State = const {
        State {
            active: Cell::new(false),
            live: Cell::new(0),
            total: Cell::new(0),
            total_limit: Cell::new(TOTAL_BYTES),
        }
    };
}

/// Charging for one engine run on this thread, until dropped.
pub(super) struct Meter {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Meter {
    /// Starts charging; `total_left` is what the document may still allocate in all.
    pub fn enter(total_left: usize) -> Meter {
        let _ = STATE.try_with(|s| {
            s.live.set(0);
            s.total.set(0);
            s.total_limit.set(total_left);
            s.active.set(true);
        });
        Meter {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The bytes allocated so far in this run.
    pub fn used(&self) -> usize {
        STATE.try_with(|s| s.total.get()).unwrap_or(0)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| s.active.set(false));
    }
}

fn charge(bytes: usize) {
    let _ = STATE.try_with(|s| {
        if !s.active.get() {
            return;
        }
        let live = s.live.get().saturating_add(bytes as isize);
        let total = s.total.get().saturating_add(bytes);
        s.live.set(live);
        s.total.set(total);
        if live > LIVE_BYTES as isize {
            s.active.set(false);
            over_budget(b"held more than 24 MiB at once, past what any result within the 16 MiB limit needs");
        }
        if total > s.total_limit.get() {
            s.active.set(false);
            over_budget(b"allocated more than 512 MiB in all for one document");
        }
    });
}

fn credit(bytes: usize) {
    let _ = STATE.try_with(|s| {
        if s.active.get() {
            s.live.set(s.live.get().saturating_sub(bytes as isize));
        }
    });
}

/// Prints the error and exits 3, allocating nothing (the allocator is what called it).
fn over_budget(what: &[u8]) -> ! {
    let mut line = Line::default();
    line.push(b"peerconf: error: ");
    super::engine::with_engine_name(|name| {
        // The same escaping as every printed name: no control character reaches the terminal.
        for &b in name.as_bytes() {
            if b < 0x20 || b == 0x7f {
                line.push(b"?");
            } else {
                line.push(&[b]);
            }
        }
    });
    line.push(b": the template engine ");
    line.push(what);
    line.push(b" (a filter or operator building a huge value, e.g. `(peers * 10**6) | string`)\n");
    line.push(b"peerconf: hint: build smaller values: the engine's memory budget bounds every expression, filters and operators alike (docs/templates.md)\n");
    line.flush();
    // SAFETY: `_exit` ends the process at once, without running destructors or atexit
    // handlers (which could allocate); nothing has been written that needs finishing.
    unsafe { libc::_exit(3) }
}

/// A fixed buffer for the error line: no allocation.
struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            buf: [0; 1024],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn flush(&self) {
        let mut at = 0;
        while at < self.len {
            // SAFETY: writes initialised bytes of our own buffer to stderr.
            let n = unsafe { libc::write(2, self.buf[at..].as_ptr().cast(), self.len - at) };
            if n <= 0 {
                return;
            }
            at += n as usize;
        }
    }
}

/// A global allocator that charges the engine's allocations to its budget, then hands every
/// call to `A`.
pub struct Budgeted<A>(pub A);

// SAFETY: every call is passed to `A` unchanged; only counters are touched around it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Budgeted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        credit(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            charge(new_size - layout.size());
        } else {
            credit(layout.size() - new_size);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
