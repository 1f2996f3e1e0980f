//! NFSv4 COMPOUND arguments: `decode_compound` (the tag, the minor version, then every
//! operation's own decoder in sequence, as the COMPOUND loop runs them) on arbitrary bytes never
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|args: &[u8]| {
    let _ = nfs::v4::decode_compound(args);
});
