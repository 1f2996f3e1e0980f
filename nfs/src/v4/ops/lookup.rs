//! LOOKUP (RFC 8881 section 18.13). In a pseudo directory a name leads to another pseudo
//! directory or into an export's root; in an export directory it is the engine's lookup.
//! Names: empty or not UTF-8 → NFS4ERR_INVAL, `.`, `..`, `/` or NUL → NFS4ERR_BADNAME, longer
//! than 255 bytes → NFS4ERR_NAMETOOLONG. Also used by SECINFO.

use crate::v4::node::{self, Node};
use crate::v4::status::from_engine;
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

/// component4: any length the record holds; its length is judged by [`check_name`].
pub fn decode<'a>(r: &mut Reader<'a>) -> xdr::Result<&'a [u8]> {
    r.opaque("component4", usize::MAX)
}

/// A component4 as a file name, or why not.
pub fn check_name(b: &[u8]) -> Result<&str, Status> {
    if b.is_empty() {
        return Err(Status::INVAL);
    }
    if b.len() > engine::namespace::NAME_BYTES_MAX {
        return Err(Status::NAMETOOLONG);
    }
    let name = std::str::from_utf8(b).map_err(|_| Status::INVAL)?;
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Status::BADNAME);
    }
    Ok(name)
}

/// `name` in directory `dir`.
pub async fn lookup<'a>(cx: &Compound<'a>, dir: &Node<'a>, name: &str) -> Result<Node<'a>, Status> {
    match dir {
        Node::Pseudo(id) => match cx.server.pseudo.lookup(*id, name) {
            Some(crate::v4::pseudo::PseudoEntry::Node(n)) => Ok(Node::Pseudo(n)),
            Some(crate::v4::pseudo::PseudoEntry::Export(e)) => node::export_root(cx, e),
            None => Err(Status::NOENT),
        },
        Node::Export(n) => {
            if !dir.is_dir() {
                return Err(Status::NOTDIR);
            }
            let rec = n.export.ns.lookup(n.rec.ino, name).await.map_err(|e| from_engine(&e))?;
            Ok(Node::Export(n.with_record(rec)))
        }
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, _w: &mut Writer) -> Result<(), Status> {
    let raw = decode(r).map_err(|_| Status::BADXDR)?;
    let dir = node::current(cx)?;
    if !dir.is_dir() {
        return Err(Status::NOTDIR);
    }
    let name = check_name(raw)?;
    let found = lookup(cx, &dir, name).await?;
    cx.current = Some(found.fh());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name(b"a.txt"), Ok("a.txt"));
        assert_eq!(check_name(b""), Err(Status::INVAL));
        assert_eq!(check_name(b"."), Err(Status::BADNAME));
        assert_eq!(check_name(b".."), Err(Status::BADNAME));
        assert_eq!(check_name(b"a/b"), Err(Status::BADNAME));
        assert_eq!(check_name(b"a\0"), Err(Status::BADNAME));
        assert_eq!(check_name(&[0xff, 0xfe]), Err(Status::INVAL));
        assert_eq!(check_name(&[b'x'; 255]).map(str::len), Ok(255));
        assert_eq!(check_name(&[b'x'; 256]), Err(Status::NAMETOOLONG));
    }
}
