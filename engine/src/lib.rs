//! Protocol-neutral filesystem over object storage, cached in the blockstore.
