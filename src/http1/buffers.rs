//! Spare working buffers, per thread, for connections between requests.
//!
//! A connection waiting for its next request holds no buffers (an idle
//! connection is a socket and a few hundred bytes of state). Giving them
//! back to the allocator and taking new ones for every request cost about
//! 1,900 instructions per keep-alive request (two 8 KiB read buffers, the
//! two head-writing buffers and the two field lists, at ~300 instructions
//! per 8 KiB allocation and ~100 per small one: callgrind,
//! `bench/instructions.sh`). Instead they go to a short per-thread list of
//! spares and the next request on that thread takes them from there. At
//! most [`SPARES`] of each kind are kept per thread (under 700 KiB in all),
//! so a burst of connections going idle still gives its memory back.

use std::cell::RefCell;
use std::thread::LocalKey;

use bytes::BytesMut;

use super::connection::FieldSpan;
use super::request::Field;

/// Spares kept per kind and thread: one per connection of a busy worker
/// (the benchmark's 64, with some to spare) is plenty; beyond that a
/// buffer goes back to the allocator.
const SPARES: usize = 64;

/// Bytes read from a peer (8 KiB for a connection's buffer).
pub(super) const READ: usize = 8 * 1024;

/// The most one read of a response body asks for (see
/// `Connection::poll_fill_up_to`): a 64 KiB response read 8 KiB at a time
/// took ten `recvfrom` calls (`strace -c`, the benchmark's `64k`).
pub(super) const BODY_READ: usize = 64 * 1024;

/// A head being written (either direction).
pub(super) const WRITE: usize = 1024;

/// Header fields a typical head has: what the lists that say where a
/// head's fields lie are sized for.
pub(super) const FIELDS: usize = 16;

/// A kind of working buffer the connections lend out.
pub(super) trait Spare: Default + Sized + 'static {
    /// A new buffer at its working size.
    fn fresh() -> Self;
    /// Whether the buffer holds memory (an empty `Default` one does not).
    fn allocated(&self) -> bool;
    /// Empties a returned, allocated buffer; false if it should not be
    /// kept (grown far past the working size).
    fn recycle(&mut self) -> bool;
    /// Whether a spare can be used now (see the read buffers below).
    fn reusable(&mut self) -> bool {
        true
    }
    /// This thread's spares of the kind.
    fn spares() -> &'static LocalKey<RefCell<Vec<Self>>>;
}

/// A buffer at its working size: a spare if this thread has one.
pub(super) fn take<T: Spare>() -> T {
    if let Ok(Some(mut spare)) = T::spares().try_with(|spares| spares.borrow_mut().pop())
        && spare.reusable()
    {
        return spare;
    }
    T::fresh()
}

/// Gives `buffer` one at its working size if it has none (see [`take`]).
pub(super) fn refill<T: Spare>(buffer: &mut T) {
    if !buffer.allocated() {
        *buffer = take();
    }
}

/// Gives a buffer back, leaving an empty, unallocated one in its place:
/// kept as a spare when there is room, else freed. An unallocated one is
/// left as it is.
pub(super) fn give<T: Spare>(buffer: &mut T) {
    if !buffer.allocated() {
        return;
    }
    let mut buffer = std::mem::take(buffer);
    if buffer.recycle() {
        // A thread being torn down has no spares: the buffer is freed.
        let _ = T::spares().try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARES {
                spares.push(buffer);
            }
        });
    }
}

/// Whether a read buffer is small enough to keep as a spare.
fn near_working_size(read: &BytesMut) -> bool {
    read.capacity() <= 2 * READ
}

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer may come back while part of it is still on its way
/// elsewhere (an upstream connection's is given back as its response
/// body's last bytes leave for the client): it is kept, and reclaimed in
/// place when taken, by then alone; one still shared then is dropped
/// instead. One grown for a large head or body ([`BODY_READ`]) is freed
/// when it comes back, not kept.
impl Spare for BytesMut {
    fn fresh() -> Self {
        Self::with_capacity(READ)
    }
    fn allocated(&self) -> bool {
        self.capacity() > 0
    }
    fn recycle(&mut self) -> bool {
        self.clear();
        near_working_size(self)
    }
    fn reusable(&mut self) -> bool {
        self.try_reclaim(READ) && near_working_size(self)
    }
    fn spares() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &READS
    }
}

/// A list kind: `size` elements to start with, kept up to four times that.
macro_rules! spare_list {
    ($list:ident, $element:ty, $size:expr) => {
        thread_local! {
            static $list: RefCell<Vec<Vec<$element>>> = const { RefCell::new(Vec::new()) };
        }
        impl Spare for Vec<$element> {
            fn fresh() -> Self {
                Self::with_capacity($size)
            }
            fn allocated(&self) -> bool {
                self.capacity() > 0
            }
            fn recycle(&mut self) -> bool {
                self.clear();
                self.capacity() <= 4 * $size
            }
            fn spares() -> &'static LocalKey<RefCell<Vec<Self>>> {
                &$list
            }
        }
    };
}

spare_list!(WRITES, u8, WRITE);
spare_list!(REQUEST_FIELDS, Field, FIELDS);
spare_list!(RESPONSE_FIELDS, FieldSpan, FIELDS);

#[cfg(test)]
mod tests {
    use super::*;

    fn spares<T: Spare>() -> usize {
        T::spares().with(|spares| spares.borrow().len())
    }

    #[test]
    fn a_buffer_given_back_is_taken_again_without_allocating() {
        let mut write: Vec<u8> = take();
        assert!(write.capacity() >= WRITE);
        write.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let at = write.as_ptr();
        give(&mut write);
        assert_eq!(write.capacity(), 0, "the connection keeps nothing");
        let again: Vec<u8> = take();
        assert_eq!(again.as_ptr(), at);
        assert!(again.is_empty());
    }

    #[test]
    fn a_read_buffer_still_shared_is_reused_only_once_alone() {
        let mut read: BytesMut = take();
        read.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let at = read.as_ptr();
        // The body's bytes leave as their own handle, still in flight.
        let body = read.split().freeze();
        give(&mut read);
        assert_eq!(spares::<BytesMut>(), 1);
        let shared_meanwhile: BytesMut = take();
        assert_ne!(shared_meanwhile.as_ptr(), at, "not reused while shared");
        assert_eq!(spares::<BytesMut>(), 0);

        let mut read = shared_meanwhile;
        read.extend_from_slice(b"abc");
        let at = read.as_ptr();
        let head = read.split().freeze();
        give(&mut read);
        drop(head);
        let reused: BytesMut = take();
        assert_eq!(reused.as_ptr(), at, "reclaimed in place once alone");
        assert!(reused.is_empty() && reused.capacity() >= READ);
        drop(body);
    }

    #[test]
    fn a_read_buffer_grown_for_a_body_is_freed_not_kept() {
        let mut grown = BytesMut::with_capacity(BODY_READ);
        grown.extend_from_slice(b"the end of a large body");
        give(&mut grown);
        assert_eq!(grown.capacity(), 0, "the connection keeps nothing");
        assert_eq!(spares::<BytesMut>(), 0, "nor does the thread");
        let mut working: BytesMut = take();
        give(&mut working);
        assert_eq!(spares::<BytesMut>(), 1, "one at the working size is kept");
    }

    #[test]
    fn spares_are_bounded_and_oversized_buffers_freed() {
        let mut many: Vec<Vec<u8>> = (0..SPARES + 10).map(|_| take()).collect();
        for buffer in &mut many {
            give(buffer);
        }
        assert_eq!(spares::<Vec<u8>>(), SPARES);
        let mut grown = Vec::<u8>::with_capacity(64 * WRITE);
        let mut unallocated = Vec::<u8>::new();
        let _: Vec<Vec<u8>> = (0..SPARES).map(|_| take::<Vec<u8>>()).collect();
        give(&mut grown);
        give(&mut unallocated);
        assert_eq!(spares::<Vec<u8>>(), 0, "neither kept");
    }
}
