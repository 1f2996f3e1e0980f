//! NULL (procedure 0): no arguments, no results; clients ping with it.

use crate::v3::{Ctx, Procedure};
use crate::xdr::{Reader, Result, Writer};

pub struct Null;

impl Procedure for Null {
    const NAME: &'static str = "NULL";
    type Args<'a> = ();

    fn decode(_r: &mut Reader<'_>) -> Result<()> {
        Ok(())
    }

    async fn run<'a>(_ctx: &Ctx<'_>, _args: Self::Args<'a>, _w: &mut Writer) {}
}
