//! ONC RPC + XDR, NFSv4.1/4.2 and NFSv3+MOUNT servers (protocol only).
//!
//! - [`xdr`], [`rpc`]: pure codecs (fuzzed).
//! - [`service`]: the seam between the transport and the programs.
//! - [`export`]: export policy (client ranges, read-only, root squash), shared by every version.
//! - [`v3`], [`mount`], [`portmap`]: NFSv3, MOUNT v3 and a minimal portmapper over the engine.
//! - [`v4`]: NFSv4.0/4.1/4.2 (COMPOUND, sessions, state).
//! - [`reactor`]: the per-core executor and network ring; [`transport`]: RPC over TCP on it.

pub mod cidr;
pub mod export;
pub mod mount;
pub mod portmap;
pub mod reactor;
pub mod rpc;
pub mod service;
pub mod transport;
pub mod v3;
pub mod v4;
pub mod xdr;
