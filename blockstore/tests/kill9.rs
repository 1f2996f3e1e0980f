//! Crash test with a real process and a real file device: a writer process puts, deletes and
//! cleans extents through the io_uring file backend, announcing on stdout what each flush made
//! durable; it is killed with SIGKILL at a random moment; the store is recovered and every
//! announced byte checked. Three rounds on the same device.
//!
//! The writer is this test binary run again (`kill9_writer_process`, ignored unless the parent
//! starts it with `BLOCKSTORE_KILL9_DEVICE` set).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blockstore::{DeviceSpec, FormatOptions, Key, PutOptions, Store, StoreConfig, StoreError};
use rand::Rng;

fn key(i: u64) -> Key {
    Key::new(i, i % 3, 1)
}

fn content(i: u64) -> Vec<u8> {
    let len = 4096 * (1 + (i % 24) as usize) + (i % 1000) as usize;
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn dirty(i: u64) -> bool {
    i.is_multiple_of(2)
}

fn spec(path: &Path) -> DeviceSpec {
    DeviceSpec::File { path: path.to_path_buf(), iopoll: false }
}

/// The writer: runs until killed.
#[test]
#[ignore = "started by kill9_recovery_keeps_every_flushed_extent"]
fn kill9_writer_process() {
    let Ok(device) = std::env::var("BLOCKSTORE_KILL9_DEVICE") else { return };
    let start: u64 = std::env::var("BLOCKSTORE_KILL9_START").expect("start").parse().expect("number");
    let store = Store::open(&spec(Path::new(&device)), StoreConfig::default()).expect("open");
    let mut out = std::io::stdout().lock();
    let mut put_seqs = BTreeMap::new();
    let (mut since_flush, mut deleted, mut cleaned) = (Vec::new(), Vec::new(), Vec::new());
    let mut full_said = false;
    for i in start.. {
        let opts = PutOptions { dirty: dirty(i), pinned: false };
        match store.put(key(i), &content(i), opts) {
            Ok(put_seq) => {
                put_seqs.insert(i, put_seq);
                since_flush.push(i);
            }
            Err(StoreError::CacheFull { .. }) => {
                if !full_said {
                    eprintln!("writer: cache full of unsaved data at {i}");
                    full_said = true;
                }
            }
            Err(e) => panic!("put {i}: {e}"),
        }
        if i % 7 == 0 && i >= start + 5 {
            // said before it is done: after a kill the parent must allow it either way
            writeln!(out, "DELETING {}", i - 5).expect("stdout");
            out.flush().expect("stdout");
            if store.delete(key(i - 5)).expect("delete") {
                deleted.push(i - 5);
            }
        }
        // the uploader's part: older dirty extents become clean
        if i % 5 == 0 && i >= start + 40 && dirty(i - 40) {
            if let Some(put_seq) = put_seqs.remove(&(i - 40)) {
                // said before it is done: after a kill the parent must allow it either way
                writeln!(out, "CLEANING {}", i - 40).expect("stdout");
                out.flush().expect("stdout");
                if store.mark_clean(key(i - 40), put_seq).expect("mark clean") {
                    cleaned.push(i - 40);
                }
            }
        }
        if i % 16 == 15 {
            store.flush().expect("flush");
            for k in since_flush.drain(..) {
                writeln!(out, "PUT {k}").expect("stdout");
            }
            for k in deleted.drain(..) {
                writeln!(out, "DELETED {k}").expect("stdout");
            }
            for k in cleaned.drain(..) {
                writeln!(out, "CLEANED {k}").expect("stdout");
            }
            writeln!(out, "FLUSHED {i}").expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

#[derive(Default)]
struct Durable {
    /// Put and flushed, not deleted since (a flushed delete removes it).
    present: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
    cleaned: BTreeSet<u64>,
    /// Clean and delete requests issued, flushed or not.
    cleaning: BTreeSet<u64>,
    deleting: BTreeSet<u64>,
    next_start: u64,
}

fn run_writer(device: &Path, start: u64, kill_after_flushes: u32, durable: &mut Durable) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["kill9_writer_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("BLOCKSTORE_KILL9_DEVICE", device)
        .env("BLOCKSTORE_KILL9_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut flushes = 0;
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = Vec::new();
    // After the kill, keep reading what the writer had already said: its clean requests count
    // as possibly done; nothing else said after the last flush is durable.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read writer output");
        let mut parts = line.split_whitespace();
        let (Some(word), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse::<u64>().ok())) else { continue };
        match word {
            "CLEANING" => {
                durable.cleaning.insert(n);
            }
            "DELETING" => {
                durable.deleting.insert(n);
            }
            _ if killed => {}
            "PUT" | "DELETED" | "CLEANED" => pending.push((word.to_string(), n)),
            "FLUSHED" => {
                // only now is everything announced since the last flush durable
                for (word, k) in pending.drain(..) {
                    match word.as_str() {
                        "PUT" => {
                            durable.present.insert(k);
                            durable.deleted.remove(&k);
                        }
                        "DELETED" => {
                            durable.present.remove(&k);
                            durable.deleted.insert(k);
                        }
                        _ => {
                            durable.cleaned.insert(k);
                        }
                    }
                }
                durable.next_start = n + 1;
                flushes += 1;
                if flushes >= kill_after_flushes {
                    // SIGKILL, mid-write: the writer is already working past this flush
                    std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..30)));
                    child.kill().expect("kill -9");
                    killed = true;
                }
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "writer too slow");
    }
    let status = child.wait().expect("wait");
    assert!(flushes >= kill_after_flushes, "writer ended early ({status}) after {flushes} flushes");
}

fn verify(device: &Path, durable: &Durable, written_below: u64) {
    let store = Store::open(&spec(device), StoreConfig::default()).expect("recover");
    let dirty_now: BTreeSet<u64> = store.dirty_extents().expect("dirty").iter().map(|d| d.key.object_id).collect();
    let (mut checked, mut lost_clean) = (0, 0);
    for i in 0..written_below {
        let want = content(i);
        match store.get(key(i), 0, want.len()) {
            Ok(got) => {
                assert!(got.bytes() == &want[..], "extent {i}: recovered bytes differ");
                assert!(!durable.deleted.contains(&i), "extent {i}: deleted and flushed, yet back");
                checked += 1;
            }
            Err(StoreError::NotFound { .. }) => {
                if durable.present.contains(&i) {
                    // a flushed extent may be gone only if it was clean (evictable)
                    // ...or if a delete of it was issued, flushed or not
                    if dirty(i) && !durable.cleaning.contains(&i) && !durable.deleting.contains(&i) {
                        let stats = store.stats().expect("stats");
                        dump_records_of(device, i);
                        panic!(
                            "extent {i} (shard {}): flushed dirty extent lost; {stats:#?}",
                            blockstore::shard_of(&key(i), 2)
                        );
                    }
                    lost_clean += 1;
                }
            }
            Err(e) => panic!("extent {i}: {e}"),
        }
    }
    for i in &durable.present {
        if dirty(*i) && !durable.cleaning.contains(i) && !durable.deleting.contains(i) {
            assert!(dirty_now.contains(i), "extent {i}: flushed as dirty, not recovered as dirty");
        }
    }
    for i in &durable.cleaned {
        assert!(!dirty_now.contains(i), "extent {i}: cleaned and flushed, recovered as dirty");
    }
    eprintln!(
        "verified {checked} extents ({lost_clean} clean ones evicted), {} flushed as present",
        durable.present.len()
    );
    store.close();
}

/// Diagnosis: every record header on the device that names object `object`, and the checkpoints.
fn dump_records_of(device: &Path, object: u64) {
    let bytes = std::fs::read(device).expect("read device");
    let sb = blockstore::Superblock::decode(&bytes[..4096]).expect("superblock");
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    for shard in 0..sb.shard_count {
        for slot in 0..2 {
            let at = sb.checkpoint_offset(shard, slot) as usize;
            let n = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().expect("4")) as usize;
            let states: String = (0..n).map(|i| char::from(b'0' + bytes[at + 64 + 16 * i])).collect();
            let epochs: Vec<u64> = (0..n).map(|i| u64_at(at + 64 + 16 * i + 8)).collect();
            eprintln!(
                "shard {shard} slot {slot}: cp seq {} reserved {} states {states} epochs {epochs:?}",
                u64_at(at + 16),
                u64_at(at + 24)
            );
        }
    }
    let mut at = sb.data_start as usize;
    while at + 4096 <= bytes.len() {
        let magic = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        if magic == 0x4352_4B42 && u64_at(at + 24) == object {
            let seg = (at as u64 - sb.data_start) / sb.segment_bytes;
            eprintln!(
                "record of {object}: segment {seg} (shard {}) sector {} kind {} flags {} seq {} epoch {} put_seq {}",
                seg % u64::from(sb.shard_count),
                (at as u64 - sb.data_start) % sb.segment_bytes / 4096,
                bytes[at + 6],
                bytes[at + 7],
                u64_at(at + 8),
                u64_at(at + 16),
                u64_at(at + 56)
            );
        }
        at += 4096;
    }
}

fn device_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("kill9-{}.img", std::process::id()))
}

#[test]
fn kill9_recovery_keeps_every_flushed_extent() {
    let device = device_path();
    let file = std::fs::File::create(&device).expect("create device file");
    file.set_len(48 << 20).expect("size");
    drop(file);
    blockstore::format(&spec(&device), &FormatOptions { segment_bytes: 1 << 20, shard_count: 2 }).expect("format");
    let mut durable = Durable::default();
    let mut rng = rand::rng();
    for round in 0..3 {
        let start = durable.next_start;
        run_writer(&device, start, rng.random_range(20..60), &mut durable);
        // keys up to a generous bound past the last flush may have been written
        let written_below = durable.next_start + 200;
        eprintln!("round {round}: killed after extent {}", durable.next_start);
        verify(&device, &durable, written_below);
        // the next writer starts past anything the killed one may have written
        durable.next_start = written_below;
    }
    let _ = std::fs::remove_file(&device);
}
