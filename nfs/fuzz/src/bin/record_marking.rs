//! Record marking (`RecordDecoder`) over a byte stream cut into arbitrary chunks: the records
//! (and the too-long error) are exactly those of a simple reference reading of the whole
//! stream, however it is cut; `bytes_wanted` is positive whenever no record is ready.
//!
//! Input: 2 bytes of record size limit, 1 byte choosing the chunk sizes, then the stream.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use nfs::rpc::{RecordDecoder, LAST_FRAGMENT};

/// What the reference reading of a whole stream gives.
#[derive(Debug, PartialEq)]
struct Outcome {
    records: Vec<Vec<u8>>,
    too_long: bool,
}

fn reference(stream: &[u8], record_bytes_max: usize) -> Outcome {
    let mut records = Vec::new();
    let mut partial = Vec::new();
    let mut at = 0;
    while let Some(head) = stream.get(at..at + 4) {
        let mark = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = (mark & !LAST_FRAGMENT) as usize;
        if partial.len() + len > record_bytes_max {
            return Outcome { records, too_long: true };
        }
        let Some(frag) = stream.get(at + 4..at + 4 + len) else { break };
        partial.extend_from_slice(frag);
        at += 4 + len;
        if mark & LAST_FRAGMENT != 0 {
            records.push(std::mem::take(&mut partial));
        }
    }
    Outcome { records, too_long: false }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, stream)) = data.split_first_chunk::<3>() else { return };
    let record_bytes_max = usize::from(u16::from_be_bytes([head[0], head[1]]));
    let chunk_seed = usize::from(head[2]);
    let expected = reference(stream, record_bytes_max);

    let mut decoder = RecordDecoder::new(record_bytes_max);
    let mut input = BytesMut::new();
    let mut got = Outcome { records: Vec::new(), too_long: false };
    let mut rest = stream;
    let mut turn = 0usize;
    'feed: while !rest.is_empty() {
        // Chunk sizes cycle through 1..=chunk_seed+1 (a seed of 255 feeds up to 256 bytes at once).
        let n = (turn % (chunk_seed + 1) + 1).min(rest.len());
        turn += 1;
        let (chunk, after) = rest.split_at(n);
        input.extend_from_slice(chunk);
        rest = after;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(record)) => got.records.push(record.to_vec()),
                Ok(None) => {
                    assert!(decoder.bytes_wanted(&input) > 0, "no record ready, yet nothing wanted");
                    break;
                }
                Err(_) => {
                    got.too_long = true;
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(got, expected);
});
