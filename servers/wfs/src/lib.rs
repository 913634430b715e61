//! wfs (placeholder: being written).
#![no_std]
