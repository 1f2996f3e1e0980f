//! Protocol-neutral filesystem over object storage, cached in the blockstore.

pub mod backfill;
pub mod bucket;
pub mod engine;
pub mod error;
pub mod latency;
pub mod locks;
pub mod meta;
pub mod namespace;
pub mod object;
pub mod preload;
pub mod readahead;
pub mod stats;
pub mod write;
pub use engine::{BucketSpec, Engine, EngineConfig, ReadChunk, ReadReply};
pub use error::{Action, EngineError, Result};
pub use namespace::{Attr, DirEntry, DirPage, ExportSpec, FileHandle, Namespace};
pub use write::names::{CreateMode, Created};
pub use write::{SetAttrs, Stability, WriteConfig, WriteOutcome};
