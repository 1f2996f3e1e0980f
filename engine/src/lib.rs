//! Protocol-neutral filesystem over object storage, cached in the blockstore.

pub mod object;
pub mod preload;
pub mod stats;
