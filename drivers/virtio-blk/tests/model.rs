//! Model test: random sync and async requests through the driver and the simulated device, with
//! random completion order and batching, against a plain `RamDisk` holding the expected contents.

use blockdev::{BlockDevice, RamDisk};
use proptest::prelude::*;
use virtio_blk::sim::{Order, Sim, SimConfig, SimHal};
use virtio_blk::{probe, Config, Request, Token};

const SECTORS: u64 = 512;

#[derive(Debug, Clone)]
enum Op {
    Write {
        sector: u64,
        sectors: usize,
        fill: u8,
    },
    Read {
        sector: u64,
        sectors: usize,
    },
    Flush,
    /// Submit several disjoint async writes and reads, then redeem them in reverse order.
    Batch {
        base: u64,
        count: usize,
        fill: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SECTORS, 1..40usize, any::<u8>()).prop_map(|(sector, sectors, fill)| Op::Write { sector, sectors, fill }),
        4 => (0..SECTORS, 1..40usize).prop_map(|(sector, sectors)| Op::Read { sector, sectors }),
        1 => Just(Op::Flush),
        2 => (0..SECTORS - 64, 1..16usize, any::<u8>()).prop_map(|(base, count, fill)| Op::Batch { base, count, fill }),
    ]
}

fn content(sector: u64, n: usize, fill: u8) -> Vec<u8> {
    (0..n * 512).map(|i| fill ^ (i as u8) ^ (sector as u8).rotate_left(3)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn driver_matches_a_ram_disk(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
        per_run in 1..6usize,
        small_queue in any::<bool>(),
    ) {
        let queue_size = if small_queue { 16 } else { 256 };
        let sim = Sim::new(SimConfig { sectors: SECTORS, queue_size, ..SimConfig::default() });
        sim.borrow_mut().dev().order = Order::Shuffle(seed);
        sim.borrow_mut().dev().per_run = per_run;
        let (mut dev, _) = probe(SimHal::new(&sim), 0, Config { slots: 8, slot_bytes: 8192 }).unwrap();
        let mut model = RamDisk::new(SECTORS);
        for op in ops {
            match op {
                Op::Write { sector, sectors, fill } => {
                    let data = content(sector, sectors, fill);
                    prop_assert_eq!(dev.write(sector, &data), model.write(sector, &data));
                }
                Op::Read { sector, sectors } => {
                    let mut got = vec![0u8; sectors * 512];
                    let mut want = vec![0u8; sectors * 512];
                    prop_assert_eq!(dev.read(sector, &mut got), model.read(sector, &mut want));
                    prop_assert!(got == want, "read {} +{} differs", sector, sectors);
                }
                Op::Flush => prop_assert_eq!(dev.flush(), Ok(())),
                Op::Batch { base, count, fill } => {
                    let mut tokens: Vec<(Token, u64, bool)> = Vec::new();
                    for i in 0..count {
                        let sector = base + 4 * i as u64;
                        let write = i % 2 == 0;
                        let data = content(sector, 2, fill);
                        let req = if write {
                            dev.submit(Request::Write { sector, data: &data })
                        } else {
                            dev.submit(Request::Read { sector, sectors: 2 })
                        };
                        match req {
                            Ok(t) => {
                                if write {
                                    model.write(sector, &data).unwrap();
                                }
                                tokens.push((t, sector, write));
                            }
                            // Back-pressure: this request never went out; the batch stops here.
                            Err(protocol::Error::WouldBlock) => break,
                            Err(e) => prop_assert!(false, "submit failed: {:?}", e),
                        }
                    }
                    prop_assert!(!tokens.is_empty());
                    for (t, sector, write) in tokens.into_iter().rev() {
                        while !dev.is_done(t) {
                            dev.wait().unwrap();
                        }
                        if write {
                            dev.take(t, None).unwrap();
                        } else {
                            // Requests in a batch touch disjoint sectors, so a read sees the
                            // model's state regardless of completion order.
                            let mut got = vec![0u8; 1024];
                            let mut want = vec![0u8; 1024];
                            dev.take(t, Some(&mut got)).unwrap();
                            model.read(sector, &mut want).unwrap();
                            prop_assert!(got == want, "async read at {} differs", sector);
                        }
                    }
                }
            }
            prop_assert_eq!(dev.outstanding(), 0);
        }
        let same = sim.borrow().devices[0].dev.disk.as_bytes() == model.as_bytes();
        prop_assert!(same, "device image differs from the model");
        prop_assert_eq!(sim.borrow().violations(), Vec::<String>::new());
    }
}
