//! The whole store on a real device: format, write through every shard, flush, reopen (recovery),
//! verify every byte, fill past capacity (eviction), and check the recovered index again; and a
//! device in use by one store is refused to another.
//!
//! On the host this runs on a file through the io_uring O_DIRECT backend. Inside the QEMU guest
//! (`image/qemu/test-nvme.sh`) it runs on `/dev/ng0n1` through NVMe passthrough:
//! `BUCKETFS_TEST_DEVICE=/dev/ng0n1` (and `BUCKETFS_TEST_DEVICE_IOPOLL=1` for polled completions).

use std::path::PathBuf;

use blockstore::{DeviceKind, DeviceSpec, FormatOptions, Key, PutOptions, Store, StoreConfig, StoreError};

fn content(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn len_of(i: u64) -> usize {
    [4096, 1 << 20, 100_000, 512 << 10, 12_345][(i % 5) as usize]
}

struct Target {
    spec: DeviceSpec,
    kind: DeviceKind,
    _file: Option<PathBuf>,
}

/// The device under test: `BUCKETFS_TEST_DEVICE`, or a fresh file named for the test.
fn target(test: &str) -> Target {
    let iopoll = std::env::var("BUCKETFS_TEST_DEVICE_IOPOLL").is_ok_and(|v| v == "1");
    if let Ok(path) = std::env::var("BUCKETFS_TEST_DEVICE") {
        let spec = match DeviceSpec::from_path(&path) {
            DeviceSpec::Nvme { path, .. } => DeviceSpec::Nvme { path, iopoll },
            DeviceSpec::File { path, .. } => DeviceSpec::File { path, iopoll },
            other => other,
        };
        let kind =
            if matches!(spec, DeviceSpec::Nvme { .. }) { DeviceKind::NvmePassthrough } else { DeviceKind::BlockOrFile };
        eprintln!("device_store: running on {spec:?}");
        return Target { spec, kind, _file: None };
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}.img", std::process::id()));
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(64 << 20).expect("size");
    Target { spec: DeviceSpec::File { path: path.clone(), iopoll }, kind: DeviceKind::BlockOrFile, _file: Some(path) }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(path) = &self._file {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn store_round_trip_recovery_and_eviction_on_a_real_device() {
    let t = target("round-trip");
    let sb = blockstore::format(&t.spec, &FormatOptions { segment_bytes: 4 << 20, shard_count: 2 }).expect("format");
    let store = Store::open(&t.spec, StoreConfig::default()).expect("open");
    // 24 extents, a third dirty
    let mut put_seqs = Vec::new();
    for i in 0..24u64 {
        let opts = PutOptions { dirty: i % 3 == 0, pinned: false };
        put_seqs.push(store.put(Key::new(i, 0, 1), &content(i, len_of(i)), opts).expect("put"));
    }
    store.flush().expect("flush");
    for i in 0..24u64 {
        let got = store.get(Key::new(i, 0, 1), 0, len_of(i)).expect("get");
        assert!(got.bytes() == &content(i, len_of(i))[..], "extent {i}");
    }
    // a partial read in the middle of a 1 MiB extent
    let mid = store.get(Key::new(1, 0, 1), 300_000, 5000).expect("partial");
    assert_eq!(mid.bytes(), &content(1, 1 << 20)[300_000..305_000]);
    assert!(store.mark_clean(Key::new(0, 0, 1), put_seqs[0]).expect("clean"));
    assert!(store.delete(Key::new(2, 0, 1)).expect("delete"));
    store.flush().expect("flush");
    store.close();

    // recovery
    let store = Store::open(&t.spec, StoreConfig::default()).expect("reopen");
    let dirty: Vec<u64> = store.dirty_extents().expect("dirty").iter().map(|d| d.key.object_id).collect();
    let mut dirty_sorted = dirty.clone();
    dirty_sorted.sort_unstable();
    assert_eq!(dirty_sorted, vec![3, 6, 9, 12, 15, 18, 21]);
    for i in 0..24u64 {
        match store.get(Key::new(i, 0, 1), 0, len_of(i)) {
            Ok(got) => assert!(i != 2 && got.bytes() == &content(i, len_of(i))[..], "extent {i} after recovery"),
            Err(StoreError::NotFound { .. }) => assert_eq!(i, 2, "only the deleted extent is gone"),
            Err(e) => panic!("extent {i}: {e}"),
        }
    }

    // fill well past capacity with clean 1 MiB extents: old clean data is evicted, dirty stays
    let data_bytes = u64::from(sb.segment_count) * sb.segment_bytes;
    let fill = data_bytes / (1 << 20) * 2;
    for i in 1000..1000 + fill {
        store.put(Key::new(i, 0, 1), &content(i, 1 << 20), PutOptions::default()).expect("fill put");
    }
    store.flush().expect("flush");
    let stats = store.stats().expect("stats");
    assert!(stats.iter().map(|s| s.segments_reclaimed).sum::<u64>() > 0, "{stats:?}");
    for i in [3u64, 6, 9, 12, 15, 18, 21] {
        let got = store.get(Key::new(i, 0, 1), 0, len_of(i)).expect("dirty survives eviction");
        assert!(got.bytes() == &content(i, len_of(i))[..]);
    }
    let newest = 1000 + fill - 1;
    assert!(store.get(Key::new(newest, 0, 1), 0, 1 << 20).expect("newest").bytes() == &content(newest, 1 << 20)[..]);
    store.close();
    let store = Store::open(&t.spec, StoreConfig::default()).expect("reopen after eviction");
    assert_eq!(store.dirty_extents().expect("dirty").len(), 7);
    let recovered: u64 = store.stats().expect("stats").iter().map(|s| s.recovered_extents).sum();
    eprintln!("device_store: {:?} ok; {recovered} extents recovered after eviction", t.kind);
    store.close();
}

#[test]
fn a_device_in_use_by_a_running_store_is_refused_clearly() {
    let t = target("in-use");
    blockstore::format(&t.spec, &FormatOptions { segment_bytes: 1 << 20, shard_count: 2 }).expect("format");
    let store = Store::open(&t.spec, StoreConfig::default()).expect("open");
    let short = StoreConfig { device_wait: std::time::Duration::from_millis(300), ..StoreConfig::default() };
    let second = Store::open(&t.spec, short.clone()).expect_err("a second store on the same device");
    assert!(second.to_string().contains("in use by another process"), "{second}");
    let reformat = blockstore::format(&t.spec, &FormatOptions { segment_bytes: 1 << 20, shard_count: 2 });
    assert!(reformat.is_err(), "formatting a device in use must be refused");
    store.close();
    // once the first store is gone (its rings torn down), the device is free again
    let again = Store::open(&t.spec, short).expect("open after close");
    again.close();
}
