//! A log-structured block store on raw NVMe, block devices or files: the appliance's cache.
//!
//! It knows nothing of files, buckets or protocols: it stores extents (up to 2 MiB) under a
//! [`Key`] (object id, block number, object version), verifies a CRC32C per 4 KiB sector on every
//! read, keeps client-written (dirty) extents until told they are uploaded, and recovers its index
//! after a crash from a checkpoint and per-segment summaries.
//!
//! - [`device`]: where bytes live (io_uring NVMe passthrough, io_uring O_DIRECT file/block device,
//!   a simulated device with a crash model, a fault injector), behind one completion-based trait.
//! - [`format`]: the on-disk format (see `FORMAT.md`).
//! - [`shard`]: one core's slice of the store: segments, index, eviction, recovery.
//! - [`store`]: formatting, one thread per shard, and a routing handle.
//!
//! Threads: each shard runs on one thread and owns its device handle; see [`store`].

pub mod buf;
pub mod device;
pub mod error;
pub mod format;
pub mod shard;
pub mod store;

pub use buf::{AlignedBuf, BufPool, PoolClassSpec, SECTOR_BYTES};
pub use device::{Device, DeviceInfo, DeviceKind, DeviceSpec};
pub use error::{Action, Result, StoreError};
pub use format::{Key, Superblock, EXTENT_BYTES_MAX, FORMAT_VERSION};
pub use shard::{DirtyExtent, Event, ExtentBuf, PutOptions, ReadBuf, Shard, ShardConfig, ShardStats};
pub use store::{format, read_superblock, shard_of, FormatOptions, Store, StoreConfig};
