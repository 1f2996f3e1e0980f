//! Every NFSv3 procedure's argument decoder (`nfs::v3::decode_args`) on arbitrary bytes: an
//! error or success, never a panic. The first four bytes pick the procedure (0..=21 and beyond).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, args)) = data.split_first_chunk::<4>() else { return };
    let proc_ = u32::from_be_bytes(*head) % 24;
    let _ = nfs::v3::decode_args(proc_, args);
});
