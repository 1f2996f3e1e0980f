//! UMNTALL (procedure 4): forgets every mount of the caller. No arguments, no results.

use crate::mount::Mount;
use crate::service::Call;

pub fn serve(mount: &Mount, call: &Call<'_>) {
    let host = call.conn.peer.ip().to_string();
    mount.mounts().retain(|(h, _)| *h != host);
}
