//! The `bucketfs` library side of the appliance binary: configuration, the admin endpoint, and
//! helpers the subcommands share. `main.rs` is the command line over it.

pub mod admin;
pub mod admin_client;
pub mod config;
pub mod size;
