//! EXPORT (procedure 5): every export's path with its client ranges as groups (what
//! `showmount -e` prints).

use crate::mount::Mount;
use crate::xdr::Writer;

pub fn serve(mount: &Mount, w: &mut Writer) {
    for e in mount.exports().iter() {
        w.put_bool(true);
        w.put_string(&e.policy.path);
        for c in &e.policy.clients {
            w.put_bool(true);
            w.put_string(&c.to_string());
        }
        w.put_bool(false);
    }
    w.put_bool(false);
}
