//! MOUNT v3 and portmapper argument decoders on arbitrary bytes: never a panic. The first four
//! bytes pick the program and the procedure.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, args)) = data.split_first_chunk::<4>() else { return };
    let pick = u32::from_be_bytes(*head);
    let proc_ = (pick >> 1) % 8;
    if pick & 1 == 0 {
        let _ = nfs::mount::decode_args(proc_, args);
    } else {
        let _ = nfs::portmap::decode_args(proc_, args);
    }
});
