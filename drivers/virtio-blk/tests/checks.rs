//! The simulated device's protocol checks catch a misbehaving driver (so the empty violation lists
//! the other tests assert mean something), and the driver survives ring index wrap-around.

use blockdev::BlockDevice;
use virtio_blk::regs::*;
use virtio_blk::sim::{Sim, SimConfig, SimHal};
use virtio_blk::{probe, Config, Hal, Layout, Request, Width};

const IO: u16 = 0xC040;

#[test]
fn sim_flags_a_hand_rolled_driver_that_breaks_the_rules() {
    let sim = Sim::new(SimConfig { queue_size: 8, ..SimConfig::default() });
    let mut hal = SimHal::new(&sim);
    // Enable I/O decoding for 00:04.0 by hand.
    hal.io_out(0xCF8, Width::U32, 0x8000_2004).unwrap();
    hal.io_out(0xCFC, Width::U32, 0b101).unwrap();
    hal.io_out(IO + REG_STATUS, Width::U8, 0).unwrap();
    hal.io_out(IO + REG_QUEUE_NOTIFY, Width::U16, 0).unwrap();
    assert!(sim.borrow().violations().iter().any(|v| v.contains("notify before DRIVER_OK")));

    hal.io_out(IO + REG_STATUS, Width::U8, (STATUS_ACKNOWLEDGE | STATUS_DRIVER) as u32).unwrap();
    hal.io_out(IO + REG_DRIVER_FEATURES, Width::U32, 1 << 28).unwrap();
    assert!(sim.borrow().violations().iter().any(|v| v.contains("unoffered features")));
    let l = Layout::legacy(8);
    let q = hal.dma_alloc(l.total / 4096).unwrap();
    hal.io_out(IO + REG_QUEUE_PFN, Width::U32, (q.phys >> 12) as u32).unwrap();
    hal.io_out(IO + REG_STATUS, Width::U8, (STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK) as u32).unwrap();
    // Publish avail.idx = 1 without writing descriptor 0 first: the device sees an empty chain.
    let mem = q.virt.as_ptr();
    // Safety: the test owns this DMA region; offsets are inside the 8-entry layout.
    unsafe { core::ptr::write_volatile(mem.add(l.avail + 2) as *mut u16, 1) };
    hal.io_out(IO + REG_QUEUE_NOTIFY, Width::U16, 0).unwrap();
    assert!(
        sim.borrow().violations().iter().any(|v| v.contains("is not DMA memory")),
        "{:?}",
        sim.borrow().violations()
    );
    // An index that runs a whole queue ahead.
    // Safety: as above.
    unsafe { core::ptr::write_volatile(mem.add(l.avail + 2) as *mut u16, 20) };
    hal.io_out(IO + REG_QUEUE_NOTIFY, Width::U16, 0).unwrap();
    assert!(sim.borrow().violations().iter().any(|v| v.contains("runs more than 8")));
}

#[test]
fn sim_flags_a_descriptor_changed_while_the_device_owns_it() {
    let sim = Sim::new(SimConfig::default());
    let (mut dev, _) = probe(SimHal::new(&sim), 0, Config::default()).unwrap();
    sim.borrow_mut().dev().auto_complete = false;
    let t = dev.submit(Request::Read { sector: 0, sectors: 1 }).unwrap();
    {
        let s = sim.borrow();
        let head_desc = s.devices[0].dev.queue_phys();
        // Shrink the header descriptor's length behind the device's back.
        assert!(s.mem.write(head_desc + 8, &7u32.to_le_bytes()));
    }
    sim.borrow_mut().complete(1);
    assert!(sim.borrow().violations().iter().any(|v| v.contains("changed while the device owned it")));
    dev.poll().unwrap();
    dev.take(t, Some(&mut [0u8; 512])).unwrap();
}

#[test]
fn ring_indices_wrap_around_u16() {
    // 70,000 requests through an 8-entry queue wrap the ring slots thousands of times and the
    // 16-bit avail/used indices once.
    let sim = Sim::new(SimConfig { queue_size: 8, seg_max: 6, ..SimConfig::default() });
    let (mut dev, _) = probe(SimHal::new(&sim), 0, Config { slots: 2, slot_bytes: 4096 }).unwrap();
    for i in 0..70_000u32 {
        if i % 7000 == 0 {
            let data = [(i / 7000) as u8; 512];
            dev.write(i as u64 / 7000, &data).unwrap();
            let mut back = [0u8; 512];
            dev.read(i as u64 / 7000, &mut back).unwrap();
            assert_eq!(back, data);
        } else {
            let a = dev.submit(Request::Flush).unwrap();
            let b = dev.submit(Request::Flush).unwrap();
            dev.wait_for(b, None).unwrap();
            dev.wait_for(a, None).unwrap();
        }
    }
    assert!(sim.borrow().devices[0].dev.completed > 65_536);
    assert_eq!(sim.borrow().violations(), Vec::<String>::new());
}
