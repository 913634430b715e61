//! Register offsets, status bits, feature bits and request constants of the legacy virtio-blk
//! interface (virtio 0.9.5; virtio 1.x section "Legacy Interfaces"), as the I/O BAR0 lays them out
//! when MSI-X is disabled (we never enable it, so device config starts at 0x14).

pub const REG_DEVICE_FEATURES: u16 = 0x00; // u32, read-only
pub const REG_DRIVER_FEATURES: u16 = 0x04; // u32
pub const REG_QUEUE_PFN: u16 = 0x08; // u32, physical address >> 12
pub const REG_QUEUE_SIZE: u16 = 0x0C; // u16, read-only in legacy
pub const REG_QUEUE_SELECT: u16 = 0x0E; // u16
pub const REG_QUEUE_NOTIFY: u16 = 0x10; // u16, queue index
pub const REG_STATUS: u16 = 0x12; // u8, 0 resets
pub const REG_ISR: u16 = 0x13; // u8, read clears
pub const REG_CONFIG: u16 = 0x14; // device-specific configuration

// virtio-blk configuration fields (offsets into REG_CONFIG).
pub const CFG_CAPACITY: u16 = 0; // u64, 512-byte sectors
pub const CFG_SIZE_MAX: u16 = 8; // u32
pub const CFG_SEG_MAX: u16 = 12; // u32

pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FAILED: u8 = 0x80;

pub const FEATURE_SIZE_MAX: u32 = 1 << 1;
pub const FEATURE_SEG_MAX: u32 = 1 << 2;
pub const FEATURE_RO: u32 = 1 << 5;
pub const FEATURE_FLUSH: u32 = 1 << 9;
/// Everything else (indirect descriptors, event index, geometry, topology...) stays off: the driver
/// does not use them, and not negotiating a feature is always allowed.
pub const WANTED_FEATURES: u32 = FEATURE_SIZE_MAX | FEATURE_SEG_MAX | FEATURE_RO | FEATURE_FLUSH;

/// Data segments per request when the device does not state SEG_MAX (one, as Linux assumes), and
/// the cap when it does.
pub const DEFAULT_SEG_MAX: u32 = 1;
pub const CAP_SEG_MAX: u32 = 128;

pub const REQ_IN: u32 = 0;
pub const REQ_OUT: u32 = 1;
pub const REQ_FLUSH: u32 = 4;

pub const BLK_S_OK: u8 = 0;
pub const BLK_S_IOERR: u8 = 1;
pub const BLK_S_UNSUPP: u8 = 2;
