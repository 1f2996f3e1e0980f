//! XDR (RFC 4506) as a pure codec.
//!
//! [`Reader`] decodes from a borrowed slice: opaque data and strings come back as slices of the
//! request (no copy), every length is checked against what is left before anything is allocated,
//! and an error names the field and the byte offset. [`Writer`] encodes a reply as a list of
//! parts: bytes it owns, and block buffers spliced in as they are ([`Writer::put_data`]), so a
//! READ reply goes to the socket from the cache's buffers without copying the payload.

use bytes::Bytes;
use engine::ReadChunk;

/// A decode failure: which field, where, and why. Maps to GARBAGE_ARGS / NFS4ERR_BADXDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("XDR: {what} at byte {at}: {why}")]
pub struct XdrError {
    pub what: &'static str,
    pub at: usize,
    pub why: &'static str,
}

pub type Result<T> = std::result::Result<T, XdrError>;

/// Padding after `len` bytes of opaque data.
pub fn pad_bytes(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Decodes XDR from a borrowed buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not yet consumed.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub fn error(&self, what: &'static str, why: &'static str) -> XdrError {
        XdrError { what, at: self.pos, why }
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.error(what, "length overflows"))?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| self.error(what, "truncated"))?;
        self.pos = end;
        Ok(out)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(what, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32> {
        self.u32(what).map(|v| v as i32)
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let hi = self.u32(what)? as u64;
        let lo = self.u32(what)? as u64;
        Ok(hi << 32 | lo)
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64> {
        self.u64(what).map(|v| v as i64)
    }

    /// A boolean: exactly 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool> {
        let at = self.pos;
        match self.u32(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(XdrError { what, at, why: "boolean is neither 0 nor 1" }),
        }
    }

    /// Fixed-length opaque data of `n` bytes (plus padding).
    pub fn opaque_fixed(&mut self, what: &'static str, n: usize) -> Result<&'a [u8]> {
        let data = self.take(what, n)?;
        self.take(what, pad_bytes(n))?;
        Ok(data)
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, what: &'static str, max: usize) -> Result<&'a [u8]> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(XdrError { what, at, why: "longer than allowed" });
        }
        self.opaque_fixed(what, n)
    }

    /// A UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<&'a str> {
        let at = self.pos;
        let b = self.opaque(what, max)?;
        std::str::from_utf8(b).map_err(|_| XdrError { what, at, why: "not UTF-8" })
    }

    /// An array length of at most `max`, each element taking at least `elem_bytes_min` bytes,
    /// checked against what is left so a forged count cannot make the caller allocate.
    pub fn array_len(&mut self, what: &'static str, max: usize, elem_bytes_min: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(XdrError { what, at, why: "more elements than allowed" });
        }
        if n.saturating_mul(elem_bytes_min.max(1)) > self.remaining() && elem_bytes_min > 0 {
            return Err(XdrError { what, at, why: "more elements than bytes left" });
        }
        Ok(n)
    }

    /// An optional value (XDR `*`): a boolean then the value.
    pub fn optional<T>(&mut self, what: &'static str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        if self.bool(what)? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Skips `n` bytes (plus padding).
    pub fn skip(&mut self, what: &'static str, n: usize) -> Result<()> {
        self.opaque_fixed(what, n).map(|_| ())
    }
}

/// One part of an encoded message.
#[derive(Debug)]
pub enum Part {
    Bytes(Vec<u8>),
    Data(ReadChunk),
    Shared(Bytes),
}

impl Part {
    /// The part's bytes, in order (a cache chunk is one piece, a fetched one several).
    pub fn pieces(&self) -> Vec<&[u8]> {
        match self {
            Part::Bytes(b) => vec![&b[..]],
            Part::Data(c) => c.pieces(),
            Part::Shared(b) => vec![&b[..]],
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::Data(c) => c.len(),
            Part::Shared(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A place in the writer's current part for a `u32` filled in later ([`Writer::set_u32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    part: usize,
    at: usize,
}

/// Encodes XDR into a list of parts.
#[derive(Debug, Default)]
pub struct Writer {
    done: Vec<Part>,
    cur: Vec<u8>,
    len: usize,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { done: Vec::new(), cur: Vec::with_capacity(256), len: 0 }
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn raw(&mut self, b: &[u8]) {
        self.cur.extend_from_slice(b);
        self.len += b.len();
    }

    pub fn put_u32(&mut self, v: u32) {
        self.raw(&v.to_be_bytes());
    }

    pub fn put_i32(&mut self, v: i32) {
        self.put_u32(v as u32);
    }

    pub fn put_u64(&mut self, v: u64) {
        self.raw(&v.to_be_bytes());
    }

    pub fn put_i64(&mut self, v: i64) {
        self.put_u64(v as u64);
    }

    pub fn put_bool(&mut self, v: bool) {
        self.put_u32(u32::from(v));
    }

    /// Fixed-length opaque data (plus padding).
    pub fn put_opaque_fixed(&mut self, b: &[u8]) {
        self.raw(b);
        self.raw(&[0u8; 3][..pad_bytes(b.len())]);
    }

    /// Variable-length opaque data.
    pub fn put_opaque(&mut self, b: &[u8]) {
        // Callers bound every length far below 4 GiB (records are at most a few MiB).
        self.put_u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.put_opaque_fixed(b);
    }

    pub fn put_string(&mut self, s: &str) {
        self.put_opaque(s.as_bytes());
    }

    /// Reserves a `u32` to fill in later (a count or a length known only after encoding).
    pub fn reserve_u32(&mut self) -> Slot {
        let slot = Slot { part: self.done.len(), at: self.cur.len() };
        self.put_u32(0);
        slot
    }

    /// Fills a reserved `u32`.
    pub fn set_u32(&mut self, slot: Slot, v: u32) {
        let b = v.to_be_bytes();
        let target = if slot.part == self.done.len() {
            Some(&mut self.cur)
        } else {
            match self.done.get_mut(slot.part) {
                Some(Part::Bytes(b)) => Some(b),
                _ => None,
            }
        };
        let dst = target.and_then(|t| t.get_mut(slot.at..slot.at + 4));
        debug_assert!(dst.is_some(), "slot {slot:?} is not a reserved u32");
        if let Some(dst) = dst {
            dst.copy_from_slice(&b);
        }
    }

    /// Variable-length opaque data taken from read chunks without copying: the length, the
    /// chunks as parts of their own, the padding.
    pub fn put_data(&mut self, chunks: Vec<ReadChunk>) {
        let n: usize = chunks.iter().map(|c| c.len()).sum();
        self.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
        for c in chunks {
            if c.is_empty() {
                continue;
            }
            self.flush_cur();
            self.len += c.len();
            self.done.push(Part::Data(c));
        }
        self.raw(&[0u8; 3][..pad_bytes(n)]);
    }

    /// Shared bytes spliced in as a part of their own (no copy), as fixed opaque data.
    pub fn put_shared(&mut self, b: Bytes) {
        let n = b.len();
        if n > 0 {
            self.flush_cur();
            self.len += n;
            self.done.push(Part::Shared(b));
        }
        self.raw(&[0u8; 3][..pad_bytes(n)]);
    }

    fn flush_cur(&mut self) {
        if !self.cur.is_empty() {
            let cur = std::mem::take(&mut self.cur);
            self.done.push(Part::Bytes(cur));
        }
    }

    /// The encoded message as parts, in order.
    pub fn into_parts(mut self) -> Vec<Part> {
        self.flush_cur();
        self.done
    }

    /// The encoded message in one buffer (a copy: tests and small messages).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in &self.done {
            for piece in p.pieces() {
                out.extend_from_slice(piece);
            }
        }
        out.extend_from_slice(&self.cur);
        out
    }

    /// Appends another writer's parts.
    pub fn append(&mut self, other: Writer) {
        let n = other.len;
        let mut parts = other.into_parts();
        if parts.len() == 1 {
            if let Some(Part::Bytes(b)) = parts.first() {
                self.raw(b);
                return;
            }
        }
        self.flush_cur();
        self.done.append(&mut parts);
        self.len += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_and_padding() {
        let mut w = Writer::new();
        w.put_u32(7);
        w.put_u64(0x0102_0304_0506_0708);
        w.put_opaque(b"abcde");
        w.put_string("hé");
        w.put_bool(true);
        let v = w.to_vec();
        assert_eq!(v.len(), 4 + 8 + 4 + 8 + 4 + 4 + 4);
        let mut r = Reader::new(&v);
        assert_eq!(r.u32("a").unwrap(), 7);
        assert_eq!(r.u64("b").unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(r.opaque("c", 5).unwrap(), b"abcde");
        assert_eq!(r.string("d", 16).unwrap(), "hé");
        assert!(r.bool("e").unwrap());
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn errors_name_field_and_offset() {
        let mut w = Writer::new();
        w.put_u32(1);
        w.put_u32(100);
        let v = w.to_vec();
        let mut r = Reader::new(&v);
        r.u32("x").unwrap();
        let e = r.opaque("name", 255).unwrap_err();
        assert_eq!((e.what, e.at, e.why), ("name", 8, "truncated"));
        let mut r = Reader::new(&v);
        r.u32("x").unwrap();
        let e = r.opaque("name", 10).unwrap_err();
        assert_eq!((e.at, e.why), (4, "longer than allowed"));
        let mut r = Reader::new(&[0, 0, 0, 2]);
        assert_eq!(r.bool("flag").unwrap_err().why, "boolean is neither 0 nor 1");
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.array_len("ops", usize::MAX, 4).unwrap_err().why, "more elements than bytes left");
    }

    #[test]
    fn reserved_slot_filled_after_splice() {
        let mut w = Writer::new();
        let slot = w.reserve_u32();
        w.put_data(vec![ReadChunk::Fetched(vec![Bytes::from_static(b"xyz")])]);
        w.put_u32(9);
        w.set_u32(slot, 42);
        let v = w.to_vec();
        assert_eq!(v, [0, 0, 0, 42, 0, 0, 0, 3, b'x', b'y', b'z', 0, 0, 0, 0, 9]);
        assert_eq!(w.len(), v.len());
        let parts = w.into_parts();
        assert_eq!(parts.len(), 3);
        assert!(matches!(parts[1], Part::Data(_)));
    }

    proptest! {
        #[test]
        fn round_trip(a: u32, b: i64, data in proptest::collection::vec(any::<u8>(), 0..40), s in "[a-z]{0,20}") {
            let mut w = Writer::new();
            w.put_u32(a);
            w.put_i64(b);
            w.put_opaque(&data);
            w.put_string(&s);
            let v = w.to_vec();
            prop_assert_eq!(v.len() % 4, 0);
            let mut r = Reader::new(&v);
            prop_assert_eq!(r.u32("a").unwrap(), a);
            prop_assert_eq!(r.i64("b").unwrap(), b);
            prop_assert_eq!(r.opaque("d", 64).unwrap(), &data[..]);
            prop_assert_eq!(r.string("s", 64).unwrap(), &s[..]);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.u32("a");
            let _ = r.opaque("b", 1 << 20);
            let _ = r.string("c", 16);
            let _ = r.array_len("d", 1 << 20, 4);
            let _ = r.u64("e");
        }
    }
}
