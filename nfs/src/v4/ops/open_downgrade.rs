//! OPEN_DOWNGRADE (RFC 8881 section 18.18): narrows an open's access and deny modes (each
//! must be within the current ones, access not empty: else NFS4ERR_INVAL); seqid + 1.

use crate::v4::ops::open::{owner_of, seqid_begin, seqid_end, Begin, OPEN4_SHARE_ACCESS_WANT_DELEG_MASK};
use crate::v4::state::open::ShareAccess;
use crate::v4::state::{badxdr, export_handle, Stateid};
use crate::v4::{Compound, Status};
use crate::xdr::{self, Reader, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    pub stateid: Stateid,
    pub seqid: u32,
    pub share_access: u32,
    pub share_deny: u32,
}

pub fn decode(r: &mut Reader<'_>) -> xdr::Result<Args> {
    Ok(Args {
        stateid: Stateid::decode(r)?,
        seqid: r.u32("open_downgrade seqid")?,
        share_access: r.u32("share_access")?,
        share_deny: r.u32("share_deny")?,
    })
}

impl Args {
    pub fn encode(&self, w: &mut Writer) {
        self.stateid.encode(w);
        w.put_u32(self.seqid);
        w.put_u32(self.share_access);
        w.put_u32(self.share_deny);
    }
}

pub async fn op(cx: &mut Compound<'_>, r: &mut Reader<'_>, w: &mut Writer) -> Result<(), Status> {
    let args = decode(r).map_err(badxdr)?;
    let stateid = cx.resolve_stateid(args.stateid)?;
    let file = export_handle(&cx.current()?).ok_or(Status::BAD_STATEID)?;
    let minor = cx.minor;
    // 4.1 clients may carry "want" bits here; they mean nothing without delegations.
    let want_ok = if minor >= 1 { OPEN4_SHARE_ACCESS_WANT_DELEG_MASK } else { 0 };
    if args.share_access & !(3 | want_ok) != 0 || args.share_deny & !3 != 0 {
        return Err(Status::INVAL);
    }
    let (access, deny) = (ShareAccess(args.share_access & 3), ShareAccess(args.share_deny));
    let run = |cx: &Compound<'_>, res: &mut Writer| {
        let next =
            cx.state().with_tables(|t, now, lease| t.open_downgrade(minor, &stateid, &file, access, deny, now, lease));
        next.inspect(|s| s.encode(res))
    };
    if minor >= 1 {
        let next = run(cx, w)?;
        cx.current_stateid = Some(next);
        return Ok(());
    }
    let key = owner_of(cx, &stateid)?;
    if let Begin::Replayed(out) = seqid_begin(cx, &key, args.seqid, false, w)? {
        return out;
    }
    let mut res = Writer::new();
    let out = run(cx, &mut res).map(drop);
    seqid_end(cx, &key, args.seqid, &out, &res, None);
    out.map(|()| w.append(res))
}
