//! fat (placeholder: being written).
#![no_std]
