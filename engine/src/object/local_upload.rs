//! Multipart uploads of the local-directory backend: parts are written at their offsets into a
//! staged file (`<name>#<digits>`, invisible to listings) next to the key's file; `complete`
//! sets the user metadata on it and publishes it exactly as a PUT does (`LocalDir::publish_sync`),
//! so `PutMode::Create` / `Update` hold here too and a reader never sees the body without its
//! metadata. Offsets follow `put_part` call order; parts are written in parallel on the blocking
//! pool, and `complete` waits for every part whoever polls them. `abort`, a refused `complete`
//! and dropping the upload remove the staged file.
//!
//! Runs on: the caller's tokio runtime; file writes go to the blocking pool.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::local_dir::{io_error, LocalDir};
use super::{MultipartUpload, ObjectError, ObjectResult, PutOptions, PutOutcome};

type PartFuture = Shared<BoxFuture<'static, ObjectResult<()>>>;

pub(super) struct LocalUpload {
    dir: Arc<LocalDir>,
    key: String,
    /// Where the object will be.
    path: PathBuf,
    staged: PathBuf,
    file: Arc<File>,
    opts: PutOptions,
    /// Where the next part goes.
    offset: u64,
    parts: Vec<PartFuture>,
    /// Published, refused or aborted: the staged file is gone.
    finished: bool,
}

impl std::fmt::Debug for LocalUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUpload")
            .field("key", &self.key)
            .field("staged", &self.staged)
            .field("offset", &self.offset)
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl LocalUpload {
    pub(super) async fn create(dir: &Arc<LocalDir>, key: &str, opts: &PutOptions) -> ObjectResult<LocalUpload> {
        let op = "create multipart";
        let (path, _) = dir.fs_path(op, key)?;
        let (p, k) = (path.clone(), key.to_string());
        let (staged, file) = dir.blocking(op, key, move |this| this.create_staged(op, &k, &p)).await?;
        Ok(LocalUpload {
            dir: dir.clone(),
            key: key.to_string(),
            path,
            staged,
            file: Arc::new(file),
            opts: opts.clone(),
            offset: 0,
            parts: Vec::new(),
            finished: false,
        })
    }
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: Bytes) -> BoxFuture<'static, ObjectResult<()>> {
        let op = "upload part";
        let (at, file, key) = (self.offset, self.file.clone(), self.key.clone());
        self.offset += data.len() as u64;
        let fut = async move {
            let k = key.clone();
            tokio::task::spawn_blocking(move || file.write_all_at(&data, at).map_err(|e| io_error(op, &k, e)))
                .await
                .map_err(|e| ObjectError::Other { op, key, detail: format!("blocking task failed: {e}") })?
        }
        .boxed()
        .shared();
        self.parts.push(fut.clone());
        fut.boxed()
    }

    async fn complete(&mut self) -> ObjectResult<PutOutcome> {
        let op = "complete multipart";
        if self.finished {
            return Err(ObjectError::Other { op, key: self.key.clone(), detail: "upload already finished".into() });
        }
        for r in futures::future::join_all(self.parts.iter().cloned()).await {
            r?;
        }
        self.finished = true;
        let (file, staged, path, key, opts) =
            (self.file.clone(), self.staged.clone(), self.path.clone(), self.key.clone(), self.opts.clone());
        self.dir
            .blocking(op, &self.key, move |this| {
                let etag = match LocalDir::finish_staged(op, &key, &file, &opts.user_metadata) {
                    Ok(etag) => etag,
                    Err(e) => {
                        let _ = fs::remove_file(&staged);
                        return Err(e);
                    }
                };
                this.publish_sync(op, &key, &staged, &path, &opts.mode)?;
                Ok(PutOutcome { etag: Some(etag), version: None })
            })
            .await
    }

    async fn abort(&mut self) -> ObjectResult<()> {
        self.parts.clear();
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        let (staged, key) = (self.staged.clone(), self.key.clone());
        self.dir
            .blocking("abort multipart", &self.key, move |this| {
                match fs::remove_file(&staged) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("abort multipart", &key, e)),
                }
                if let Some(parent) = staged.parent() {
                    this.remove_empty_dirs(parent);
                }
                Ok(())
            })
            .await
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.finished {
            // One unlink: cheap enough to do here rather than leave a staged file behind.
            let _ = fs::remove_file(&self.staged);
        }
    }
}
