//! memfs (placeholder: being written).
#![no_std]
