//! Driver against the simulated legacy virtio-blk device: handshake, I/O, queue depth, faults.

use blockdev::BlockDevice;
use protocol::Error;
use virtio_blk::pci::{self, PciAddress};
use virtio_blk::regs::*;
use virtio_blk::sim::{Order, Sim, SimConfig, SimHal, SimHandle};
use virtio_blk::{probe, Config, Request, VirtioBlk};

fn setup(cfg: SimConfig, config: Config) -> (SimHandle, VirtioBlk<SimHal>) {
    let sim = Sim::new(cfg);
    let (dev, irq) = probe(SimHal::new(&sim), 0, config).expect("probe");
    assert_eq!(irq, 11);
    (sim, dev)
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + seed * 7 + (i as u64 >> 9)) as u8).collect()
}

fn clean(sim: &SimHandle) {
    assert_eq!(sim.borrow().violations(), Vec::<String>::new());
}

#[test]
fn init_handshake_negotiates_and_enables_the_device() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    assert_eq!(dev.capacity(), 8192);
    assert_eq!(dev.queue_size(), 256);
    assert_eq!(dev.features(), FEATURE_FLUSH | FEATURE_SEG_MAX);
    assert_eq!(dev.wait(), Ok(0), "nothing in flight: waiting returns at once instead of sleeping");
    let mut s = sim.borrow_mut();
    assert_eq!(s.devices[0].command & 0b101, 0b101, "I/O space and bus mastering on");
    let d = s.dev();
    assert_eq!(d.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    assert_eq!(d.driver_features, FEATURE_FLUSH | FEATURE_SEG_MAX);
    drop(s);
    clean(&sim);
}

#[test]
fn unwanted_features_are_not_accepted() {
    // Indirect descriptors (28) and event index (29) are offered but the driver does not use them.
    let cfg = SimConfig { features: FEATURE_FLUSH | 1 << 28 | 1 << 29 | FEATURE_RO, ..SimConfig::default() };
    let (sim, mut dev) = setup(cfg, Config::default());
    assert_eq!(dev.features(), FEATURE_FLUSH | FEATURE_RO);
    assert!(dev.read_only());
    assert_eq!(dev.write(0, &[0u8; 512]), Err(Error::ReadOnly));
    clean(&sim);
}

#[test]
fn pci_scan_finds_every_legacy_block_device_and_nothing_else() {
    let mut s = Sim::empty();
    s.add(PciAddress { bus: 0, device: 3, function: 0 }, 0x1000, 0xC000, 10, SimConfig::default()); // net
    s.add(PciAddress { bus: 0, device: 5, function: 0 }, 0x1001, 0xC080, 11, SimConfig::default());
    s.add(PciAddress { bus: 2, device: 1, function: 0 }, 0x1001, 0xC100, 10, SimConfig::default());
    s.add(PciAddress { bus: 0, device: 6, function: 0 }, 0x1042, 0xC180, 11, SimConfig::default()); // modern
    let sim = std::rc::Rc::new(std::cell::RefCell::new(s));
    let mut hal = SimHal::new(&sim);
    let found = pci::find_virtio_blk(&mut hal).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].io_base, found[0].irq_line), (0xC080, 11));
    assert_eq!((found[1].address.bus, found[1].io_base, found[1].irq_line), (2, 0xC100, 10));
    assert_eq!(sim.borrow().devices[0].command, 0, "the net device was left alone");
    // The second disk is driven independently of the first.
    let (mut second, _) = probe(SimHal::new(&sim), 1, Config::default()).unwrap();
    second.write(3, &[0x5a; 512]).unwrap();
    assert_eq!(sim.borrow().devices[2].dev.disk.as_bytes()[3 * 512], 0x5a);
    assert!(matches!(probe(SimHal::new(&sim), 2, Config::default()), Err(Error::NotFound)));
}

#[test]
fn probing_one_disk_leaves_the_others_bus_mastering_off() {
    // The WATOS kernel switches a function off when the last driver that enabled it dies, so the
    // driver of disk 1 must not enable disk 0 (its own driver would lose it when disk 1's dies).
    let mut s = Sim::empty();
    s.add(PciAddress { bus: 0, device: 4, function: 0 }, 0x1001, 0xC040, 11, SimConfig::default());
    s.add(PciAddress { bus: 0, device: 5, function: 0 }, 0x1001, 0xC080, 10, SimConfig::default());
    let sim = std::rc::Rc::new(std::cell::RefCell::new(s));
    let (_second, irq) = probe(SimHal::new(&sim), 1, Config::default()).unwrap();
    assert_eq!(irq, 10);
    assert_eq!((sim.borrow().devices[0].command, sim.borrow().devices[1].command), (0, 0b101));
}

#[test]
fn read_write_flush_round_trip() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    let data = pattern(1, 8 * 512);
    dev.write(100, &data).unwrap();
    dev.flush().unwrap();
    let mut back = vec![0u8; data.len()];
    dev.read(100, &mut back).unwrap();
    assert_eq!(back, data);
    let s = sim.borrow();
    assert_eq!(&s.devices[0].dev.disk.as_bytes()[100 * 512..108 * 512], &data[..]);
    assert_eq!(s.devices[0].dev.requests_by_kind, [1, 1, 0, 0, 1]);
    assert!(s.irq_acks >= 3, "every wait acknowledged its interrupt");
    drop(s);
    clean(&sim);
}

#[test]
fn large_requests_split_to_size_max_and_seg_max() {
    let cfg = SimConfig {
        features: FEATURE_FLUSH | FEATURE_SIZE_MAX | FEATURE_SEG_MAX,
        size_max: 4096,
        seg_max: 3,
        ..SimConfig::default()
    };
    let (sim, mut dev) = setup(cfg, Config { slots: 8, slot_bytes: 64 * 1024 });
    assert_eq!(dev.max_request_bytes(), 3 * 4096);
    let data = pattern(2, 1 << 20);
    dev.write(7, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    dev.read(7, &mut back).unwrap();
    assert_eq!(back, data);
    let s = sim.borrow();
    assert_eq!(s.devices[0].dev.max_chain_len, 5, "header + 3 segments + status");
    assert!(s.devices[0].dev.max_pending > 1, "a large call keeps several requests in flight");
    drop(s);
    clean(&sim);
}

#[test]
fn many_in_flight_complete_out_of_order() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    let image = pattern(3, 8192 * 512);
    sim.borrow_mut().dev().disk.as_bytes_mut().copy_from_slice(&image);
    sim.borrow_mut().dev().auto_complete = false;
    let tokens: Vec<_> = (0..24u64)
        .map(|i| dev.submit(Request::Read { sector: i * 50, sectors: 1 + (i % 4) as u32 }).unwrap())
        .collect();
    assert_eq!(dev.in_flight(), 24);
    assert_eq!(sim.borrow_mut().dev().pending(), 24);
    sim.borrow_mut().dev().order = Order::Shuffle(99);
    assert_eq!(sim.borrow_mut().complete(24), 24);
    assert_eq!(dev.poll().unwrap(), 24);
    // Redeem in reverse submission order: each token still finds its own data.
    for (i, t) in tokens.iter().enumerate().rev() {
        let n = 1 + i % 4;
        let mut buf = vec![0u8; n * 512];
        dev.take(*t, Some(&mut buf)).unwrap();
        let at = i * 50 * 512;
        assert_eq!(buf, &image[at..at + n * 512], "request {i}");
    }
    assert_eq!(dev.outstanding(), 0);
    clean(&sim);
}

#[test]
fn queue_full_is_backpressure_not_a_hang() {
    // An 8-entry queue holds two 3-descriptor chains, fewer than the 4 slots.
    let cfg = SimConfig { queue_size: 8, seg_max: 6, ..SimConfig::default() };
    let (sim, mut dev) = setup(cfg, Config { slots: 4, slot_bytes: 4096 });
    sim.borrow_mut().dev().auto_complete = false;
    let a = dev.submit(Request::Write { sector: 1, data: &[1; 512] }).unwrap();
    let b = dev.submit(Request::Write { sector: 2, data: &[2; 512] }).unwrap();
    assert_eq!(dev.submit(Request::Write { sector: 3, data: &[3; 512] }), Err(Error::WouldBlock));
    assert_eq!(dev.take(a, None), Err(Error::Busy), "still in flight");
    sim.borrow_mut().dev().order = Order::Lifo;
    sim.borrow_mut().complete(1);
    dev.poll().unwrap();
    assert!(dev.is_done(b) && !dev.is_done(a));
    dev.take(b, None).unwrap();
    let c = dev.submit(Request::Flush).unwrap();
    sim.borrow_mut().dev().auto_complete = true;
    dev.wait_for(a, None).unwrap();
    dev.wait_for(c, None).unwrap();
    assert_eq!(dev.take(a, None), Err(Error::InvalidArgument), "a token is redeemed once");
    // Sync calls larger than the queue can hold still go through, a few requests at a time.
    let data = pattern(4, 64 * 512);
    dev.write(10, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    dev.read(10, &mut back).unwrap();
    assert_eq!(back, data);
    clean(&sim);
}

#[test]
fn slots_held_by_untaken_completions_make_sync_calls_busy() {
    let (sim, mut dev) = setup(SimConfig::default(), Config { slots: 2, slot_bytes: 4096 });
    let t1 = dev.submit(Request::Read { sector: 0, sectors: 1 }).unwrap();
    let t2 = dev.submit(Request::Read { sector: 1, sectors: 1 }).unwrap();
    dev.wait().unwrap();
    assert!(dev.is_done(t1) && dev.is_done(t2));
    assert_eq!(dev.read(5, &mut [0u8; 512]), Err(Error::Busy));
    dev.take(t1, None).unwrap();
    dev.take(t2, None).unwrap();
    dev.read(5, &mut [0u8; 512]).unwrap();
    clean(&sim);
}

#[test]
fn device_error_status_is_io_error_at_the_offset() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    sim.borrow_mut().dev().fail_next = Some(BLK_S_IOERR);
    assert_eq!(dev.read(40, &mut [0u8; 1024]), Err(Error::Io { offset: 40 * 512 }));
    sim.borrow_mut().dev().fail_next = Some(BLK_S_UNSUPP);
    assert_eq!(dev.write(41, &[0u8; 512]), Err(Error::Io { offset: 41 * 512 }));
    sim.borrow_mut().dev().skip_status_next = true;
    assert_eq!(dev.write(42, &[0u8; 512]), Err(Error::Io { offset: 42 * 512 }));
    // The driver is intact afterwards.
    dev.write(43, &[9u8; 512]).unwrap();
    let mut b = [0u8; 512];
    dev.read(43, &mut b).unwrap();
    assert_eq!(b, [9u8; 512]);
    assert_eq!(dev.outstanding(), 0);
    clean(&sim);
}

#[test]
fn a_failed_chunk_of_a_large_call_still_drains_the_others() {
    let (sim, mut dev) = setup(SimConfig::default(), Config { slots: 8, slot_bytes: 4096 });
    sim.borrow_mut().dev().order = Order::Lifo;
    sim.borrow_mut().dev().fail_next = Some(BLK_S_IOERR);
    let r = dev.write(0, &pattern(5, 32 * 4096));
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    assert_eq!(dev.outstanding(), 0, "no slot leaked");
    dev.write(0, &[1u8; 4096]).unwrap();
    clean(&sim);
}

#[test]
fn used_entry_for_an_unsubmitted_id_is_malformed_not_a_panic() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    sim.borrow_mut().dev().auto_complete = false;
    let good = dev.submit(Request::Read { sector: 0, sectors: 1 }).unwrap();
    let _lost = dev.submit(Request::Read { sector: 1, sectors: 1 }).unwrap();
    sim.borrow_mut().complete(1);
    sim.borrow_mut().dev().bogus_id_next = Some(77);
    sim.borrow_mut().complete(1);
    assert_eq!(dev.poll(), Err(Error::Malformed));
    dev.take(good, Some(&mut [0u8; 512])).unwrap();
    // An id beyond the queue, too.
    let t = dev.submit(Request::Read { sector: 2, sectors: 1 }).unwrap();
    sim.borrow_mut().dev().bogus_id_next = Some(100_000);
    sim.borrow_mut().complete(1);
    assert_eq!(dev.poll(), Err(Error::Malformed));
    assert!(!dev.is_done(t));
}

#[test]
fn extra_used_entries_are_malformed() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    sim.borrow_mut().dev().extra_entry_next = Some(0);
    assert_eq!(dev.read(0, &mut [0u8; 512]), Err(Error::Malformed));
}

#[test]
fn used_length_beyond_the_chain_is_an_io_error() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    sim.borrow_mut().dev().used_len_next = Some(4096);
    assert_eq!(dev.read(3, &mut [0u8; 512]), Err(Error::Io { offset: 3 * 512 }));
    sim.borrow_mut().dev().used_len_next = Some(513);
    dev.read(3, &mut [0u8; 512]).unwrap();
    clean(&sim);
}

#[test]
fn a_device_that_never_completes_is_an_error_not_a_hang() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    sim.borrow_mut().dev().auto_complete = false;
    assert!(matches!(dev.read(0, &mut [0u8; 512]), Err(Error::Io { .. })));
    assert!(sim.borrow().idle_waits > 0);
}

#[test]
fn bad_arguments_are_rejected_before_the_device_sees_them() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    assert_eq!(dev.read(8191, &mut [0u8; 1024]), Err(Error::InvalidArgument));
    assert_eq!(dev.write(0, &[0u8; 100]), Err(Error::InvalidArgument));
    assert_eq!(dev.submit(Request::Read { sector: 0, sectors: 0 }), Err(Error::InvalidArgument));
    let too_big = vec![0u8; dev.max_request_bytes() + 512];
    assert_eq!(dev.submit(Request::Write { sector: 0, data: &too_big }), Err(Error::InvalidArgument));
    assert_eq!(dev.write_vectored(&[(0, &[1u8; 512]), (9000, &[1u8; 512])]), Err(Error::InvalidArgument));
    assert_eq!(sim.borrow_mut().dev().notifies, 0, "nothing was submitted");
    assert_eq!(sim.borrow().devices[0].dev.disk.as_bytes()[0], 0, "no partial write");
}

#[test]
fn flush_without_the_feature_is_a_no_op() {
    let (sim, mut dev) = setup(SimConfig { features: 0, ..SimConfig::default() }, Config::default());
    dev.flush().unwrap();
    assert_eq!(dev.submit(Request::Flush), Err(Error::NotSupported));
    assert_eq!(sim.borrow_mut().dev().notifies, 0);
}

#[test]
fn bad_device_configuration_fails_init_cleanly() {
    for (q, want) in [(0u16, Error::NotSupported), (6, Error::NotSupported), (2, Error::NotSupported)] {
        let sim = Sim::new(SimConfig { queue_size: q, ..SimConfig::default() });
        let r = probe(SimHal::new(&sim), 0, Config::default());
        assert_eq!(r.err(), Some(want), "queue size {q}");
        assert_eq!(sim.borrow_mut().dev().status & STATUS_FAILED, STATUS_FAILED);
    }
    let sim = Sim::new(SimConfig::default());
    assert!(probe(SimHal::new(&sim), 0, Config { slots: 0, slot_bytes: 4096 }).is_err());
    assert!(probe(SimHal::new(&sim), 0, Config { slots: 4, slot_bytes: 1000 }).is_err());
}

#[test]
fn vectored_batches_go_out_together_and_complete_in_any_order() {
    let (sim, mut dev) = setup(SimConfig::default(), Config { slots: 16, slot_bytes: 8192 });
    sim.borrow_mut().dev().order = Order::Shuffle(7);
    sim.borrow_mut().dev().per_run = 3;
    let bufs: Vec<Vec<u8>> = (0..12).map(|i| pattern(i, 4096)).collect();
    let runs: Vec<(u64, &[u8])> = bufs.iter().enumerate().map(|(i, b)| (i as u64 * 16, &b[..])).collect();
    dev.write_vectored(&runs).unwrap();
    assert_eq!(sim.borrow_mut().dev().notifies, 1, "one notify for the whole batch");
    let mut outs: Vec<Vec<u8>> = vec![vec![0u8; 4096]; 12];
    let mut rruns: Vec<(u64, &mut [u8])> =
        outs.iter_mut().enumerate().map(|(i, b)| (i as u64 * 16, &mut b[..])).collect();
    dev.read_vectored(&mut rruns).unwrap();
    assert_eq!(outs, bufs);
    assert!(sim.borrow_mut().dev().max_pending >= 12);
    clean(&sim);
}

#[test]
fn dropping_the_driver_resets_the_device_and_a_new_driver_takes_over() {
    let (sim, mut dev) = setup(SimConfig::default(), Config::default());
    dev.write(9, &[0x33; 512]).unwrap();
    sim.borrow_mut().dev().auto_complete = false;
    let _abandoned = dev.submit(Request::Read { sector: 9, sectors: 1 }).unwrap();
    drop(dev);
    assert_eq!(sim.borrow_mut().dev().status, 0, "reset on drop");
    assert_eq!(sim.borrow_mut().dev().pending(), 0, "the device forgot the abandoned request");
    // A restarted driver (as after a blockcache-server restart) initialises the same device again.
    sim.borrow_mut().dev().auto_complete = true;
    let (mut again, _) = probe(SimHal::new(&sim), 0, Config::default()).unwrap();
    let mut b = [0u8; 512];
    again.read(9, &mut b).unwrap();
    assert_eq!(b, [0x33; 512]);
    clean(&sim);
}
