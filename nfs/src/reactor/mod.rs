//! The per-core reactor: a small executor for `!Send` futures (on `async-task`) and one
//! io_uring ring for the network, one of each per core thread. No tokio, no work stealing.
//!
//! # Threads
//! A [`Reactor`] is created on the thread that runs it and never leaves it. Tasks spawned with
//! [`spawn_local`] run only on that thread. Their wakers may be called from ANY thread (engine
//! futures are woken by tokio threads, the block store by its shard threads): a wake from another
//! thread queues the task on its core's remote queue and, if the core sleeps in the ring, rings
//! its doorbell (an eventfd whose read is kept armed in the ring). A wake on the core's own
//! thread goes to a thread-local queue without atomics.
//!
//! # API
//! - [`Reactor::new`], [`Reactor::block_on`]: create the core's reactor, run tasks and the ring
//!   until a future completes. Dropping the reactor drops every task still alive on this thread
//!   and waits (bounded) until the kernel has released every buffer of an operation in flight.
//! - [`spawn_local`]: spawn a `!Send` future on the current thread's reactor; the returned
//!   [`Task`] cancels it when dropped (or `detach()` it).
//! - [`Remote`]: a `Send + Sync` handle to a core (its number; spawn `Send` futures onto it).
//! - Ring operations: [`accept`], [`recv`], [`sendmsg`] (gather from owned buffers
//!   without copying), [`close`], [`sleep`]. Each future owns its buffers while the kernel uses
//!   them; a future dropped mid-operation parks its buffers in the ring and cancels the
//!   operation, so nothing is freed while the kernel may still write to it.
//! - [`Notify`] (one waiter on the same core) and [`Signal`] (raised once from any thread).
//!
//! # Bounds
//! At most `ops_in_flight_max` ring operations are in flight (an operation beyond it waits for a
//! slot); the completion queue is sized to hold them all. The run queues hold each live task at
//! most once (`async-task` schedules a task only when it is not already scheduled), so they are
//! bounded by the number of tasks, which their spawners bound (connections, calls in flight).
//! A core runs at most [`TASKS_PER_TURN`] tasks between two looks at the ring.

mod executor;
mod ops;
mod ring;
mod sync;
#[cfg(test)]
mod tests;

pub use async_task::Task;
pub use executor::{spawn_local, Reactor, ReactorConfig, Remote};
pub use ops::{accept, close, recv, sendmsg, sleep, GatherBufs};
pub use sync::{Notify, Signal};

/// Tasks run between two looks at the ring (fairness between ready tasks and new I/O).
pub const TASKS_PER_TURN: usize = 128;

/// Most iovecs one `sendmsg` carries (Linux `UIO_MAXIOV`).
pub const IOVECS_MAX: usize = 1024;
