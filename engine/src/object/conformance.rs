//! The conformance suite every [`ObjectClient`] must pass: what the engine relies on, checked
//! the same way against the in-memory client, the local directory, a real S3 server and the
//! fault wrapper. Used by `engine/tests/object_conformance.rs`.
//!
//! API: [`run_all`] (or one `pub async fn` per property), given a client and a scratch prefix
//! (keys are written under it and left there: give a disposable bucket or prefix). Each property
//! returns `Err(description)` on the first violation. [`Capabilities`] states what a backend
//! cannot do; the suite then checks that it *refuses* clearly (`Unsupported`), never that it is
//! silently skipped.
//!
//! Runs on: the test's tokio runtime.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::StreamExt;

use super::{get_range_bytes, join_key, ObjectClient, ObjectError, PutMode, PutOptions, UserMetadata};

/// What a backend can do, where backends legitimately differ.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Empty `dir/` objects can be written, read, listed, copied and deleted.
    pub dir_markers: bool,
    /// A marker keeps the user metadata it was written with. A property of the server rather
    /// than of the client: SeaweedFS 4.48 answers 200 to a PUT of `dir/` with `x-amz-meta-*`
    /// and drops the metadata.
    pub dir_marker_metadata: bool,
    /// `put_multipart` honours `PutMode::Create` / `Update`.
    pub conditional_multipart: bool,
}

impl Capabilities {
    /// Everything holds.
    pub const ALL: Capabilities =
        Capabilities { dir_markers: true, dir_marker_metadata: true, conditional_multipart: true };
}

/// Size of the object [`large_copy`] copies in [`run_all`]: four 5 MiB parts and a short last
/// one, for a client whose multipart-copy threshold is lowered below it.
pub const LARGE_COPY_BYTES: usize = 20 * 1024 * 1024 + 3 * 1024;

pub type Outcome = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn ctx<T>(what: &str, r: Result<T, ObjectError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// A body whose every byte says where it is (so a wrong range shows).
pub fn pattern(len: usize, salt: u8) -> Bytes {
    Bytes::from((0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ salt).collect::<Vec<u8>>())
}

fn meta(pairs: &[(&str, &str)]) -> UserMetadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn put(c: &dyn ObjectClient, key: &str, body: Bytes) -> Result<Option<String>, String> {
    Ok(ctx(&format!("put {key}"), c.put(key, body, &PutOptions::default()).await)?.etag)
}

/// Every property, in order.
pub async fn run_all(c: &dyn ObjectClient, scratch: &str, caps: Capabilities) -> Outcome {
    put_head_get_ranges(c, &join_key(scratch, "basic")).await?;
    overwrite_changes_etag(c, &join_key(scratch, "overwrite")).await?;
    conditional_get(c, &join_key(scratch, "cond-get")).await?;
    conditional_put(c, &join_key(scratch, "cond-put")).await?;
    list_with_delimiter(c, &join_key(scratch, "list/")).await?;
    list_paging(c, &join_key(scratch, "paging/"), 2_500).await?;
    dir_markers(c, &join_key(scratch, "markers/"), caps).await?;
    multipart(c, &join_key(scratch, "multipart")).await?;
    conditional_multipart(c, &join_key(scratch, "cond-multipart"), caps).await?;
    copy(c, &join_key(scratch, "copy")).await?;
    large_copy(c, &join_key(scratch, "large-copy"), LARGE_COPY_BYTES).await?;
    delete_and_not_found(c, &join_key(scratch, "delete")).await?;
    Ok(())
}

/// PUT with metadata, HEAD, and ranged GETs: whole, middle, last byte, zero-length.
pub async fn put_head_get_ranges(c: &dyn ObjectClient, key: &str) -> Outcome {
    let body = pattern(100_000, 1);
    let user = meta(&[("color", "blue"), ("mode", "0644")]);
    let opts = PutOptions { mode: PutMode::Overwrite, user_metadata: user.clone() };
    let put = ctx("put", c.put(key, body.clone(), &opts).await)?;
    let head = ctx("head", c.head(key).await)?;
    ensure!(head.key == key, "head key {} != {key}", head.key);
    ensure!(head.size == 100_000, "head size {}", head.size);
    ensure!(head.etag.is_some(), "no ETag from head");
    ensure!(put.etag.is_none() || put.etag == head.etag, "put ETag {:?} != head ETag {:?}", put.etag, head.etag);
    ensure!(head.user_metadata.as_ref() == Some(&user), "user metadata {:?} != {user:?}", head.user_metadata);
    for range in [0..100_000u64, 12_345..67_890, 99_999..100_000, 0..1, 50_000..50_000] {
        let got = ctx(&format!("get {range:?}"), get_range_bytes(c, key, range.clone(), None).await)?;
        let want = body.slice(range.start as usize..range.end as usize);
        ensure!(got == want, "get {range:?}: {} bytes, wrong content or length", got.len());
    }
    // The stream yields exactly the bytes asked, then ends.
    let mut stream = ctx("get stream", c.get_range(key, 10..20, None).await)?;
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += ctx("stream chunk", chunk)?.len();
    }
    ensure!(n == 10, "stream of 10 bytes gave {n}");
    Ok(())
}

/// Overwriting changes the ETag, the body and replaces the metadata.
pub async fn overwrite_changes_etag(c: &dyn ObjectClient, key: &str) -> Outcome {
    let opts = PutOptions { mode: PutMode::Overwrite, user_metadata: meta(&[("a", "1")]) };
    ctx("put 1", c.put(key, pattern(1000, 1), &opts).await)?;
    let first = ctx("head 1", c.head(key).await)?;
    put(c, key, pattern(1000, 2)).await?;
    let second = ctx("head 2", c.head(key).await)?;
    ensure!(first.etag != second.etag, "ETag {:?} unchanged by an overwrite", first.etag);
    ensure!(second.user_metadata == Some(UserMetadata::new()), "metadata kept: {:?}", second.user_metadata);
    let got = ctx("get", get_range_bytes(c, key, 0..1000, None).await)?;
    ensure!(got == pattern(1000, 2), "old body after overwrite");
    Ok(())
}

/// GET with If-Match: the current ETag passes, a stale one is `Precondition`.
pub async fn conditional_get(c: &dyn ObjectClient, key: &str) -> Outcome {
    let stale = ctx("put 1", c.put(key, pattern(100, 1), &PutOptions::default()).await)?;
    let stale = ctx("head 1", c.head(key).await)?.etag.or(stale.etag).ok_or("no ETag")?;
    put(c, key, pattern(100, 2)).await?;
    let current = ctx("head 2", c.head(key).await)?.etag.ok_or("no ETag")?;
    let got = ctx("get if-match current", get_range_bytes(c, key, 0..100, Some(&current)).await)?;
    ensure!(got == pattern(100, 2), "wrong body with matching If-Match");
    match get_range_bytes(c, key, 0..100, Some(&stale)).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("get with stale If-Match {stale}: {other:?}, want Precondition")),
    }
    Ok(())
}

/// PUT Create on an existing key and PUT Update with a stale ETag are `Precondition`.
pub async fn conditional_put(c: &dyn ObjectClient, key: &str) -> Outcome {
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    ctx("put create (new)", c.put(key, pattern(10, 1), &create).await)?;
    match c.put(key, pattern(10, 2), &create).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("put create on an existing key: {other:?}, want Precondition")),
    }
    let etag1 = ctx("head", c.head(key).await)?.etag.ok_or("no ETag")?;
    let update = |etag: &str| PutOptions { mode: PutMode::Update { etag: etag.into() }, ..Default::default() };
    ctx("put update (current)", c.put(key, pattern(10, 3), &update(&etag1)).await)?;
    let etag2 = ctx("head", c.head(key).await)?.etag.ok_or("no ETag")?;
    ensure!(etag1 != etag2, "ETag unchanged by a conditional update");
    match c.put(key, pattern(10, 4), &update(&etag1)).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("put update with a stale ETag: {other:?}, want Precondition")),
    }
    let got = ctx("get", get_range_bytes(c, key, 0..10, None).await)?;
    ensure!(got == pattern(10, 3), "a failed conditional put changed the object");
    let missing = format!("{key}-missing");
    match c.put(&missing, pattern(10, 5), &update(&etag2)).await {
        Err(e) if e.is_precondition() || e.is_not_found() => {}
        other => return Err(format!("put update of a missing key: {other:?}, want Precondition")),
    }
    Ok(())
}

async fn list_all(c: &dyn ObjectClient, prefix: &str, delimiter: bool, page: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for pages in 0.. {
        ensure!(pages < 100_000, "listing {prefix} never ends");
        let p = ctx(&format!("list {prefix}"), c.list(prefix, delimiter, token.as_deref(), page).await)?;
        ensure!(p.objects.len() + p.prefixes.len() <= page, "page of {} > {page}", p.objects.len() + p.prefixes.len());
        let mut merged: Vec<String> = p.objects.iter().map(|o| o.key.clone()).chain(p.prefixes).collect();
        merged.sort();
        out.extend(merged);
        match p.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    Ok(out)
}

/// Objects and common prefixes with a delimiter, everything without, a partial prefix, and
/// paging through a mix of both with tiny pages.
pub async fn list_with_delimiter(c: &dyn ObjectClient, prefix: &str) -> Outcome {
    let names = ["a", "b", "c.txt", "d1/x", "d1/y", "d1/sub/z", "d2/z", "e"];
    for n in names {
        put(c, &format!("{prefix}{n}"), pattern(3, 0)).await?;
    }
    let page = ctx("list", c.list(prefix, true, None, 1000).await)?;
    let objects: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    let want: Vec<String> = ["a", "b", "c.txt", "e"].iter().map(|n| format!("{prefix}{n}")).collect();
    ensure!(objects == want, "objects {objects:?} != {want:?}");
    let want_prefixes = vec![format!("{prefix}d1/"), format!("{prefix}d2/")];
    ensure!(page.prefixes == want_prefixes, "prefixes {:?} != {want_prefixes:?}", page.prefixes);
    ensure!(page.next_token.is_none(), "a complete page has a next token");
    ensure!(page.objects.iter().all(|o| o.size == 3 && o.user_metadata.is_none()), "listed sizes/metadata wrong");
    // Without delimiter: every key, in order.
    let mut all: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
    all.sort();
    let flat = list_all(c, prefix, false, 1000).await?;
    ensure!(flat == all, "flat listing {flat:?} != {all:?}");
    // A prefix that ends inside a name.
    let partial = ctx("list partial", c.list(&format!("{prefix}d"), true, None, 1000).await)?;
    ensure!(partial.objects.is_empty() && partial.prefixes == want_prefixes, "partial prefix: {partial:?}");
    // Paging a delimiter listing, pages of 1 to 3 entries.
    let mut rolled: Vec<String> = want.iter().cloned().chain(want_prefixes.iter().cloned()).collect();
    rolled.sort();
    for size in 1..=3 {
        let got = list_all(c, prefix, true, size).await?;
        ensure!(got == rolled, "delimiter listing in pages of {size}: {got:?} != {rolled:?}");
    }
    Ok(())
}

/// `keys` objects listed in small pages come back exactly once each, in order.
pub async fn list_paging(c: &dyn ObjectClient, prefix: &str, keys: usize) -> Outcome {
    let names: Vec<String> = (0..keys).map(|i| format!("{prefix}k{:06}", (i * 7919) % keys)).collect();
    let results: Vec<Result<Option<String>, String>> =
        futures::stream::iter(names.iter().map(|k| put(c, k, Bytes::from_static(b"x"))))
            .buffer_unordered(16)
            .collect()
            .await;
    for r in results {
        r?;
    }
    let want: Vec<String> = names.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    ensure!(want.len() == keys, "test bug: duplicate names");
    for (page, delimiter) in [(100, false), (333, true)] {
        let got = list_all(c, prefix, delimiter, page).await?;
        if got != want {
            let dups = got.len() - got.iter().collect::<BTreeSet<_>>().len();
            return Err(format!(
                "paging {keys} keys by {page} (delimiter {delimiter}): got {} keys, {dups} duplicates, first difference at {:?}",
                got.len(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            ));
        }
    }
    Ok(())
}

/// Empty `dir/` objects (`mkdir` of an empty directory, the s3fs / rclone convention): written
/// with `mode`/`uid`/`gid`/`mtime` metadata, refused when they exist with `Create`, read, listed
/// (as an object of their own directory, as a common prefix of the parent, in a flat listing),
/// copied (a rename) and deleted (`rmdir`). Or refused with `Unsupported`.
pub async fn dir_markers(c: &dyn ObjectClient, prefix: &str, caps: Capabilities) -> Outcome {
    let marker = format!("{prefix}dir/");
    let user = meta(&[("mode", "040755"), ("uid", "1000"), ("gid", "1000"), ("mtime", "1700000000")]);
    let create = PutOptions { mode: PutMode::Create, user_metadata: user.clone() };
    let r = c.put(&marker, Bytes::new(), &create).await;
    if !caps.dir_markers {
        return match r {
            Err(ObjectError::Unsupported { .. }) => Ok(()),
            other => Err(format!("put of marker {marker} on a backend without markers: {other:?}")),
        };
    }
    ctx("put marker", r)?;
    match c.put(&marker, Bytes::new(), &create).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("put create of an existing marker (mkdir of an existing dir): {other:?}")),
    }
    put(c, &format!("{prefix}file"), pattern(5, 0)).await?;
    let head = ctx("head marker", c.head(&marker).await)?;
    ensure!(head.size == 0 && head.key == marker, "marker head {head:?}");
    ensure!(head.user_metadata.is_some(), "no user metadata from a marker's head");
    if caps.dir_marker_metadata {
        ensure!(head.user_metadata.as_ref() == Some(&user), "marker metadata {:?} != {user:?}", head.user_metadata);
    }
    let got = ctx("get marker", get_range_bytes(c, &marker, 0..0, None).await)?;
    ensure!(got.is_empty(), "marker body {} bytes", got.len());
    let parent = ctx("list parent", c.list(prefix, true, None, 1000).await)?;
    ensure!(parent.prefixes == vec![marker.clone()], "parent prefixes {:?}", parent.prefixes);
    let own = ctx("list marker dir", c.list(&marker, true, None, 1000).await)?;
    let keys: Vec<&str> = own.objects.iter().map(|o| o.key.as_str()).collect();
    ensure!(keys == vec![marker.as_str()] && own.objects[0].size == 0, "marker's own listing {keys:?}");
    let flat = list_all(c, prefix, false, 1000).await?;
    ensure!(flat == vec![marker.clone(), format!("{prefix}file")], "flat listing {flat:?}");
    // A deeper marker in a flat listing keeps its '/'.
    let deeper = ctx("flat list from above", c.list(&prefix[..prefix.len() - 1], false, None, 1000).await)?;
    ensure!(deeper.objects.iter().any(|o| o.key == marker), "flat listing from above lost {marker}: {deeper:?}");
    // Rename of an empty directory: copy the marker, delete the old one.
    let renamed = format!("{prefix}renamed/");
    let etag = head.etag.clone().ok_or("no ETag on the marker")?;
    ctx("copy marker", c.copy(&marker, &renamed, Some(&etag)).await)?;
    let head2 = ctx("head copied marker", c.head(&renamed).await)?;
    ensure!(head2.size == 0 && head2.key == renamed, "copied marker head {head2:?}");
    if caps.dir_marker_metadata {
        ensure!(head2.user_metadata.as_ref() == Some(&user), "copied marker metadata {:?}", head2.user_metadata);
    }
    ctx("delete copied marker", c.delete(&renamed).await)?;
    ctx("delete marker", c.delete(&marker).await)?;
    ctx("delete marker again", c.delete(&marker).await)?;
    for gone in [&marker, &renamed] {
        match c.head(gone).await {
            Err(e) if e.is_not_found() => {}
            other => return Err(format!("head of a deleted marker {gone}: {other:?}")),
        }
    }
    let parent = ctx("list parent after delete", c.list(prefix, true, None, 1000).await)?;
    ensure!(parent.prefixes.is_empty(), "deleted marker still listed: {:?}", parent.prefixes);
    Ok(())
}

/// Three parts (5 MiB, 5 MiB, 1 KiB) sent in parallel, complete, read across part boundaries;
/// an aborted upload publishes nothing.
pub async fn multipart(c: &dyn ObjectClient, key: &str) -> Outcome {
    const MIB: usize = 1024 * 1024;
    let body = pattern(10 * MIB + 1024, 9);
    let user = meta(&[("origin", "multipart")]);
    let opts = PutOptions { mode: PutMode::Overwrite, user_metadata: user.clone() };
    let mut up = ctx("create multipart", c.put_multipart(key, &opts).await)?;
    let parts = vec![
        up.put_part(body.slice(..5 * MIB)),
        up.put_part(body.slice(5 * MIB..10 * MIB)),
        up.put_part(body.slice(10 * MIB..)),
    ];
    for r in futures::future::join_all(parts).await {
        ctx("upload part", r)?;
    }
    ctx("complete", up.complete().await)?;
    let head = ctx("head", c.head(key).await)?;
    ensure!(head.size == body.len() as u64, "multipart size {}", head.size);
    ensure!(head.user_metadata.as_ref() == Some(&user), "multipart metadata {:?}", head.user_metadata);
    for range in [
        0..body.len() as u64,
        (5 * MIB - 10) as u64..(5 * MIB + 10) as u64,
        (10 * MIB) as u64..(10 * MIB + 1024) as u64,
    ] {
        let got = ctx("get", get_range_bytes(c, key, range.clone(), None).await)?;
        ensure!(got == body.slice(range.start as usize..range.end as usize), "multipart range {range:?} wrong");
    }
    // complete waits for parts whose futures nobody polled.
    let waited = format!("{key}-unpolled");
    let mut up = ctx("create multipart 2", c.put_multipart(&waited, &PutOptions::default()).await)?;
    drop(up.put_part(body.slice(..5 * MIB)));
    let _unpolled = up.put_part(body.slice(5 * MIB..6 * MIB));
    match up.complete().await {
        Ok(_) => {
            let size = ctx("head unpolled", c.head(&waited).await)?.size;
            ensure!(size == 6 * MIB as u64, "complete without polling the parts gave {size} bytes");
        }
        Err(e) => return Err(format!("complete of parts nobody polled: {e}")),
    }
    let aborted = format!("{key}-aborted");
    let mut up = ctx("create multipart 3", c.put_multipart(&aborted, &PutOptions::default()).await)?;
    ctx("upload part", up.put_part(body.slice(..5 * MIB)).await)?;
    ctx("abort", up.abort().await)?;
    match c.head(&aborted).await {
        Err(e) if e.is_not_found() => {}
        other => return Err(format!("head after abort: {other:?}")),
    }
    Ok(())
}

/// Uploads `body` in parts of 5 MiB with `opts`; the outcome of `complete`.
async fn upload(
    c: &dyn ObjectClient,
    key: &str,
    body: &Bytes,
    opts: &PutOptions,
) -> Result<Result<Option<String>, ObjectError>, String> {
    const PART: usize = 5 * 1024 * 1024;
    let mut up = ctx("create multipart", c.put_multipart(key, opts).await)?;
    let parts: Vec<_> =
        (0..body.len()).step_by(PART).map(|at| up.put_part(body.slice(at..(at + PART).min(body.len())))).collect();
    for r in futures::future::join_all(parts).await {
        ctx("upload part", r)?;
    }
    Ok(up.complete().await.map(|o| o.etag))
}

/// Multipart uploads with a precondition on complete (the write-back of a file someone else may
/// have changed meanwhile): `Create` of an absent key publishes, of a present one is
/// `Precondition`; `Update` with the current ETag publishes, with a stale one (or of a missing
/// key) is `Precondition`; a refused upload publishes nothing. Or refused with `Unsupported`.
pub async fn conditional_multipart(c: &dyn ObjectClient, key: &str, caps: Capabilities) -> Outcome {
    let create = PutOptions { mode: PutMode::Create, user_metadata: meta(&[("v", "1")]) };
    if !caps.conditional_multipart {
        return match c.put_multipart(key, &create).await {
            Err(ObjectError::Unsupported { .. }) => Ok(()),
            other => Err(format!("conditional multipart on a backend without: {:?}", other.map(|_| "an upload"))),
        };
    }
    let v1 = pattern(5 * 1024 * 1024 + 1000, 21);
    let put_etag = ctx("complete create (absent)", upload(c, key, &v1, &create).await?)?;
    let head1 = ctx("head 1", c.head(key).await)?;
    let etag1 = head1.etag.clone().ok_or("no ETag")?;
    ensure!(put_etag.is_none() || put_etag.as_ref() == Some(&etag1), "complete ETag {put_etag:?} != head {etag1}");
    ensure!(head1.user_metadata == Some(meta(&[("v", "1")])), "metadata {:?}", head1.user_metadata);
    let unchanged = |what: &'static str, want: Bytes, etag: String| async move {
        let head = ctx("head", c.head(key).await)?;
        ensure!(head.etag.as_ref() == Some(&etag), "{what}: ETag {:?}, want {etag}", head.etag);
        let got = ctx("get", get_range_bytes(c, key, 0..want.len() as u64, None).await)?;
        ensure!(got == want, "{what}: the object changed");
        Ok::<(), String>(())
    };
    match upload(c, key, &pattern(1000, 22), &create).await? {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("multipart create over an existing key: {other:?}")),
    }
    unchanged("after a refused create", v1.clone(), etag1.clone()).await?;
    let update =
        |etag: &str| PutOptions { mode: PutMode::Update { etag: etag.into() }, user_metadata: meta(&[("v", "2")]) };
    let v2 = pattern(5 * 1024 * 1024 + 2000, 23);
    ctx("complete update (current ETag)", upload(c, key, &v2, &update(&etag1)).await?)?;
    let head2 = ctx("head 2", c.head(key).await)?;
    let etag2 = head2.etag.clone().ok_or("no ETag")?;
    ensure!(etag2 != etag1, "ETag unchanged by a conditional multipart update");
    ensure!(head2.user_metadata == Some(meta(&[("v", "2")])), "metadata {:?}", head2.user_metadata);
    match upload(c, key, &pattern(6 * 1024 * 1024, 24), &update(&etag1)).await? {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("multipart update with a stale ETag: {other:?}")),
    }
    unchanged("after a refused update", v2, etag2.clone()).await?;
    let missing = format!("{key}-missing");
    match upload(c, &missing, &pattern(10, 25), &update(&etag2)).await? {
        Err(e) if e.is_precondition() || e.is_not_found() => {}
        other => return Err(format!("multipart update of a missing key: {other:?}")),
    }
    match c.head(&missing).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => Err(format!("a refused multipart update published {missing}: {other:?}")),
    }
}

/// Server-side copy keeps body and metadata; a stale If-Match is `Precondition`; a missing source
/// is `NotFound`.
pub async fn copy(c: &dyn ObjectClient, key: &str) -> Outcome {
    let (from, to) = (format!("{key}-from"), format!("{key}-to"));
    let user = meta(&[("k", "v")]);
    ctx(
        "put",
        c.put(&from, pattern(4096, 3), &PutOptions { mode: PutMode::Overwrite, user_metadata: user.clone() }).await,
    )?;
    let etag = ctx("head", c.head(&from).await)?.etag.ok_or("no ETag")?;
    ctx("copy", c.copy(&from, &to, Some(&etag)).await)?;
    let got = ctx("get copy", get_range_bytes(c, &to, 0..4096, None).await)?;
    ensure!(got == pattern(4096, 3), "copied body differs");
    let head = ctx("head copy", c.head(&to).await)?;
    ensure!(head.user_metadata.as_ref() == Some(&user), "copied metadata {:?}", head.user_metadata);
    put(c, &from, pattern(4096, 4)).await?;
    match c.copy(&from, &to, Some(&etag)).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("copy with a stale If-Match: {other:?}")),
    }
    let got = ctx("get copy after refused copy", get_range_bytes(c, &to, 0..4096, None).await)?;
    ensure!(got == pattern(4096, 3), "a refused copy changed the target");
    ctx("copy unconditional", c.copy(&from, &to, None).await)?;
    let got = ctx("get copy 2", get_range_bytes(c, &to, 0..4096, None).await)?;
    ensure!(got == pattern(4096, 4), "second copy did not overwrite");
    match c.copy(&format!("{key}-missing"), &to, None).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => Err(format!("copy of a missing key: {other:?}")),
    }
}

/// Server-side copy of a `len`-byte object (large enough for a multipart copy when the client's
/// threshold is lowered): the bytes and metadata arrive; a stale `if_match` is `Precondition`
/// and leaves the target alone; an unconditional copy takes the new source.
pub async fn large_copy(c: &dyn ObjectClient, key: &str, len: usize) -> Outcome {
    let (from, to) = (format!("{key}-from"), format!("{key}-to"));
    let user = meta(&[("k", "large")]);
    let v1 = pattern(len, 31);
    ctx("put", c.put(&from, v1.clone(), &PutOptions { mode: PutMode::Overwrite, user_metadata: user.clone() }).await)?;
    let etag = ctx("head", c.head(&from).await)?.etag.ok_or("no ETag")?;
    ctx("copy", c.copy(&from, &to, Some(&etag)).await)?;
    let head = ctx("head copy", c.head(&to).await)?;
    ensure!(head.size == len as u64, "copy size {}", head.size);
    ensure!(head.user_metadata.as_ref() == Some(&user), "copied metadata {:?}", head.user_metadata);
    let got = ctx("get copy", get_range_bytes(c, &to, 0..len as u64, None).await)?;
    ensure!(got == v1, "copied bytes differ");
    let v2 = pattern(len, 32);
    put(c, &from, v2.clone()).await?;
    match c.copy(&from, &to, Some(&etag)).await {
        Err(e) if e.is_precondition() => {}
        other => return Err(format!("large copy with a stale If-Match: {other:?}")),
    }
    let got = ctx("get copy after refused copy", get_range_bytes(c, &to, 0..len as u64, None).await)?;
    ensure!(got == v1, "a refused copy changed the target");
    ctx("copy unconditional", c.copy(&from, &to, None).await)?;
    let got = ctx("get copy 2", get_range_bytes(c, &to, 0..len as u64, None).await)?;
    ensure!(got == v2, "unconditional copy did not overwrite");
    Ok(())
}

/// Delete removes; deleting again succeeds; HEAD and GET of a missing key are `NotFound`.
pub async fn delete_and_not_found(c: &dyn ObjectClient, key: &str) -> Outcome {
    put(c, key, pattern(10, 0)).await?;
    ctx("delete", c.delete(key).await)?;
    ctx("delete again", c.delete(key).await)?;
    match c.head(key).await {
        Err(ObjectError::NotFound { op: "head", key: k }) if k == key => {}
        other => return Err(format!("head of a deleted key: {other:?}")),
    }
    match get_range_bytes(c, key, 0..1, None).await {
        Err(e) if e.is_not_found() && e.key() == key => {}
        other => return Err(format!("get of a deleted key: {other:?}")),
    }
    match get_range_bytes(c, key, 0..0, None).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => Err(format!("zero-length get of a deleted key: {other:?}")),
    }
}
