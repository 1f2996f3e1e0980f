//! From the configuration to the engine: bucket clients and export specs.

use std::sync::Arc;

use bucketfs::config::{BucketConfig, BucketLocation, Config, ExportConfig};
use engine::object::store::{AzureConfig, GcsConfig, ObjectStoreConfig, S3Config, S3Credentials, StoreClient};
use engine::{BucketSpec, ExportSpec};

/// The engine's write-path settings from `[write]`.
pub fn write_config(w: &bucketfs::config::WriteConfig) -> engine::WriteConfig {
    engine::WriteConfig {
        buffered_bytes_max: w.buffered_bytes_max.0,
        upload_delay_after_close: w.upload_after_close,
        upload_delay_idle: w.upload_after_idle,
        part_bytes: w.part_bytes.0,
        parts_in_flight_max: w.parts_in_flight,
        uploads_in_flight_max: w.uploads_in_flight,
        dirty_wait: w.full_cache_wait,
        ..engine::WriteConfig::default()
    }
}

/// The engine's view of an export.
pub fn export_spec(e: &ExportConfig, config: &Config) -> ExportSpec {
    ExportSpec {
        name: e.path.clone(),
        bucket: e.bucket.clone(),
        prefix: e.prefix.clone(),
        read_only: e.read_only,
        file_mode: e.file_mode.0,
        dir_mode: e.dir_mode.0,
        uid: e.uid,
        gid: e.gid,
        listing_ttl: config.engine.listing_ttl,
        posix_from_metadata: true,
    }
}

/// A bucket's client, built from where the configuration says the bucket is.
pub fn bucket_spec(b: &BucketConfig) -> anyhow::Result<BucketSpec> {
    let client = client_for(&b.location)?;
    Ok(BucketSpec { name: b.name.clone(), client, gets_in_flight_max: b.gets_in_flight_max as usize })
}

fn client_for(location: &BucketLocation) -> anyhow::Result<Arc<dyn engine::object::ObjectClient>> {
    let config = match location {
        BucketLocation::Local { path } => ObjectStoreConfig::Local { root: path.clone() },
        BucketLocation::S3 { bucket, endpoint, region, path_style, access_key_id, secret_access_key, allow_http } => {
            let credentials = match (access_key_id, secret_access_key) {
                (Some(id), Some(secret)) => S3Credentials::Static {
                    access_key_id: id.clone(),
                    secret_access_key: secret.expose().to_string(),
                    session_token: None,
                },
                _ => S3Credentials::Environment,
            };
            ObjectStoreConfig::S3(S3Config {
                bucket: bucket.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                path_style: *path_style,
                credentials,
                allow_http: *allow_http,
                timeouts: Default::default(),
            })
        }
        BucketLocation::Gcs { bucket, service_account_path } => ObjectStoreConfig::Gcs(GcsConfig {
            bucket: bucket.clone(),
            service_account_path: service_account_path.as_ref().map(|p| p.display().to_string()),
            timeouts: Default::default(),
        }),
        BucketLocation::Azure { account, container, access_key } => ObjectStoreConfig::Azure(AzureConfig {
            account: account.clone(),
            container: container.clone(),
            access_key: access_key.as_ref().map(|k| k.expose().to_string()),
            timeouts: Default::default(),
        }),
    };
    let client = StoreClient::new(&config).map_err(|e| anyhow::anyhow!("bucket at {}: {e}", location.kind()))?;
    Ok(Arc::new(client))
}
