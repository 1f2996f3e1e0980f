//! `bucketfs buckets` and `bucketfs exports`: the configured buckets and exports as tables, from
//! a configuration file or the embedded default. Reads the file only; creates nothing. Runs on
//! the main thread.

use std::path::{Path, PathBuf};

use bucketfs::config::{BucketConfig, BucketLocation, Config, ExportConfig};
use clap::Args;

use crate::human::Table;

#[derive(Args)]
pub struct ConfigArgs {
    /// The configuration file; without it, the embedded default (a local directory var/bucket
    /// exported as / to loopback clients).
    #[arg(long, env = "BUCKETFS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    match &args.config {
        Some(path) => Ok(Config::load(path)?),
        None => {
            eprintln!("(no --config: the embedded default configuration)");
            Ok(Config::embedded_default(Path::new("")))
        }
    }
}

pub fn buckets(args: &ConfigArgs) -> anyhow::Result<()> {
    print!("{}", buckets_table(&load(args)?.buckets));
    Ok(())
}

pub fn exports(args: &ConfigArgs) -> anyhow::Result<()> {
    print!("{}", exports_table(&load(args)?.exports));
    Ok(())
}

/// Where the bucket is, and where its credentials come from (never the credentials).
fn describe(location: &BucketLocation) -> (String, String) {
    let from_env = "environment".to_string();
    match location {
        BucketLocation::Local { path } => (path.display().to_string(), "-".to_string()),
        BucketLocation::S3 { bucket, endpoint, region, path_style, access_key_id, .. } => {
            let mut place = format!("s3://{bucket} ({region}");
            if let Some(endpoint) = endpoint {
                place.push_str(&format!(", {endpoint}"));
            }
            if *path_style {
                place.push_str(", path-style");
            }
            place.push(')');
            let credentials = access_key_id.as_ref().map_or(from_env, |id| format!("key {id} in config"));
            (place, credentials)
        }
        BucketLocation::Gcs { bucket, service_account_path } => {
            let credentials =
                service_account_path.as_ref().map_or(from_env, |p| format!("service account {}", p.display()));
            (format!("gs://{bucket}"), credentials)
        }
        BucketLocation::Azure { account, container, access_key } => {
            let credentials = if access_key.is_some() { "key in config".to_string() } else { from_env };
            (format!("azure://{account}/{container}"), credentials)
        }
    }
}

pub fn buckets_table(buckets: &[BucketConfig]) -> String {
    let mut t = Table::new(&["NAME", "KIND", "LOCATION", "GETS IN FLIGHT", "CREDENTIALS"]);
    for b in buckets {
        let (place, credentials) = describe(&b.location);
        t.row(vec![
            b.name.clone(),
            b.location.kind().to_string(),
            place,
            b.gets_in_flight_max.to_string(),
            credentials,
        ]);
    }
    t.render()
}

pub fn exports_table(exports: &[ExportConfig]) -> String {
    let mut t = Table::new(&["PATH", "BUCKET", "PREFIX", "ACCESS", "CLIENTS", "ROOT", "MODES", "OWNER"]);
    for e in exports {
        let clients: Vec<String> = e.clients.iter().map(ToString::to_string).collect();
        t.row(vec![
            e.path.clone(),
            e.bucket.clone(),
            if e.prefix.is_empty() { "-".to_string() } else { e.prefix.clone() },
            if e.read_only { "ro" } else { "rw" }.to_string(),
            clients.join(","),
            if e.root_squash { "squashed" } else { "root" }.to_string(),
            format!("{}/{}", e.file_mode, e.dir_mode),
            format!("{}:{}", e.uid, e.gid),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tables() {
        let c = Config::embedded_default(Path::new(""));
        assert_eq!(
            buckets_table(&c.buckets),
            "NAME   KIND   LOCATION    GETS IN FLIGHT  CREDENTIALS\nlocal  local  var/bucket  32              -\n"
        );
        let exports = exports_table(&c.exports);
        assert!(
            exports.contains("/     local   -       rw      127.0.0.0/8,::1/128  squashed  0644/0755  0:0"),
            "{exports}"
        );
    }

    #[test]
    fn credentials_are_described_not_shown() {
        let text = "[[bucket]]\nname = \"t\"\nkind = \"s3\"\nbucket = \"b\"\nregion = \"r\"\nendpoint = \"https://h\"\n\
                    path_style = true\naccess_key_id = \"AKID\"\nsecret_access_key = \"SECRET\"\n\
                    [[bucket]]\nname = \"g\"\nkind = \"gcs\"\nbucket = \"gb\"\n\
                    [[bucket]]\nname = \"a\"\nkind = \"azure\"\naccount = \"ac\"\ncontainer = \"co\"\naccess_key = \"K\"\n\
                    [[export]]\npath = \"/t\"\nbucket = \"t\"\nread_only = true\n";
        let c = Config::parse(text, Path::new("/etc")).expect("valid");
        let table = buckets_table(&c.buckets);
        assert!(table.contains("s3://b (r, https://h, path-style)") && table.contains("key AKID in config"), "{table}");
        assert!(table.contains("gs://gb") && table.contains("environment"), "{table}");
        assert!(table.contains("azure://ac/co") && table.contains("key in config"), "{table}");
        assert!(!table.contains("SECRET") && !table.contains(" K "), "{table}");
        assert!(exports_table(&c.exports).contains(" ro "));
    }
}
