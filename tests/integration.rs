//! Every cross-crate integration and workflow test, as one test binary: each file
//! below is a module, so the SDK crates and the functions are linked once rather
//! than once per file (a dozen ~100 MB links, and the disk they take, on a clean
//! CI machine).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

mod adversarial;
mod api;
mod architecture;
mod aws_adapters;
mod bad_input;
mod binaries;
mod break_glass;
mod checkout;
mod deploy_rehearsal;
mod events;
mod guard;
mod hr_revocation;
mod reliability;
mod request_store;
mod revocation;
mod template;
mod try_by_hand;
mod vendors;
mod workflows;
