//! DUMP (procedure 2): the mounts handed out and not unmounted (client address, path).

use crate::mount::Mount;
use crate::xdr::Writer;

pub fn serve(mount: &Mount, w: &mut Writer) {
    for (host, dir) in mount.mount_list() {
        w.put_bool(true);
        w.put_string(&host);
        w.put_string(&dir);
    }
    w.put_bool(false);
}
