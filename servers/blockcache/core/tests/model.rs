//! Model-based random test: a cache over a RAM disk must behave exactly like a plain RAM disk.
//!
//! Random sequences of (vectored) reads, writes and flushes at any sector alignment run against both,
//! with tiny caches so eviction, write-back, read-modify-write and read-ahead happen all the time, on
//! a device whose size is not a multiple of the 4 KiB block. Every read must return the model's
//! bytes, and after every flush the device under the cache must equal the model byte for byte.
//! `PROPTEST_CASES` raises the case count; `cargo test -p blockcache -- --ignored` runs a long variant.

use blockcache::{BlockCache, Config, PolicyKind, ReadAhead, WriteMode};
use blockdev::{BlockDevice, RamDisk};
use proptest::prelude::*;

const SECTORS: u64 = 8 * 6 + 5;

#[derive(Debug, Clone)]
enum Step {
    Read(u64, usize),
    Write(u64, usize, u8),
    ReadVec(Vec<(u64, usize)>),
    WriteVec(Vec<(u64, usize)>, u8),
    Flush,
}

fn range() -> impl Strategy<Value = (u64, usize)> {
    (0..SECTORS).prop_flat_map(|s| (Just(s), 0..=((SECTORS - s) as usize).min(20)))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => range().prop_map(|(s, n)| Step::Read(s, n)),
        4 => (range(), any::<u8>()).prop_map(|((s, n), b)| Step::Write(s, n, b)),
        1 => prop::collection::vec(range(), 1..4).prop_map(Step::ReadVec),
        1 => (prop::collection::vec(range(), 1..4), any::<u8>()).prop_map(|(r, b)| Step::WriteVec(r, b)),
        1 => Just(Step::Flush),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..6,
        prop_oneof![Just(PolicyKind::Lru), Just(PolicyKind::S3Fifo)],
        prop_oneof![3 => Just(WriteMode::WriteBack), 1 => Just(WriteMode::WriteThrough)],
        prop_oneof![Just(None), Just(Some(ReadAhead { initial: 1, max: 4 }))],
        1usize..5,
    )
        .prop_map(|(cap, policy, mode, ra, batch)| {
            Config::new(cap).policy(policy).write_mode(mode).read_ahead(ra).max_batch_blocks(batch)
        })
}

/// Bytes of a write: distinct per sector so misplaced sectors are caught.
fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 512).map(|i| seed.wrapping_add((i / 512) as u8).wrapping_mul(31).wrapping_add(i as u8 % 3)).collect()
}

fn run(cfg: Config, steps: &[Step]) -> Result<(), TestCaseError> {
    let start: Vec<u8> = (0..SECTORS as usize * 512).map(|i| (i % 509) as u8).collect();
    let mut model = RamDisk::from_bytes(start.clone());
    let mut cache = BlockCache::new(RamDisk::from_bytes(start), cfg).unwrap();
    for step in steps {
        match step {
            Step::Read(s, n) => {
                let (mut a, mut b) = (vec![0u8; n * 512], vec![0u8; n * 512]);
                cache.read(*s, &mut a).unwrap();
                model.read(*s, &mut b).unwrap();
                prop_assert_eq!(a, b, "read {} +{}", s, n);
            }
            Step::Write(s, n, seed) => {
                let d = data(*n, *seed);
                cache.write(*s, &d).unwrap();
                model.write(*s, &d).unwrap();
            }
            Step::ReadVec(runs) => {
                let mut a: Vec<Vec<u8>> = runs.iter().map(|(_, n)| vec![0u8; n * 512]).collect();
                let mut v: Vec<(u64, &mut [u8])> =
                    runs.iter().map(|r| r.0).zip(a.iter_mut().map(|b| &mut b[..])).collect();
                cache.read_vectored(&mut v).unwrap();
                for ((s, _), got) in runs.iter().zip(&a) {
                    let mut want = vec![0u8; got.len()];
                    model.read(*s, &mut want).unwrap();
                    prop_assert_eq!(got, &want, "vectored read at {}", s);
                }
            }
            Step::WriteVec(runs, seed) => {
                let bufs: Vec<Vec<u8>> =
                    runs.iter().enumerate().map(|(i, (_, n))| data(*n, seed.wrapping_add(i as u8 * 64))).collect();
                let v: Vec<(u64, &[u8])> = runs.iter().map(|r| r.0).zip(bufs.iter().map(|b| &b[..])).collect();
                cache.write_vectored(&v).unwrap();
                // Overlapping runs apply in order, as on a real device.
                for (s, b) in &v {
                    model.write(*s, b).unwrap();
                }
            }
            Step::Flush => {
                cache.flush().unwrap();
                prop_assert_eq!(cache.inner().as_bytes(), model.as_bytes(), "device after flush");
                prop_assert_eq!(cache.stats().dirty_blocks, 0);
            }
        }
        prop_assert!(cache.cached_blocks() <= cfg.capacity_blocks);
        prop_assert!(cache.stats().dirty_blocks as usize <= cache.cached_blocks());
        if cfg.write_mode == WriteMode::WriteThrough {
            prop_assert_eq!(cache.inner().as_bytes(), model.as_bytes(), "write-through device");
        }
    }
    let disk = cache.into_inner().map_err(|(e, _)| e).unwrap();
    prop_assert_eq!(disk.as_bytes(), model.as_bytes(), "device after the final flush");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_behaves_like_the_device(cfg in config(), steps in prop::collection::vec(step(), 1..60)) {
        run(cfg, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    #[ignore = "long: ~20x the default cases and longer sequences"]
    fn cache_behaves_like_the_device_long(cfg in config(), steps in prop::collection::vec(step(), 1..200)) {
        run(cfg, &steps)?;
    }
}
