//! # lapse-bench
//!
//! Lapse's benchmarks and reliability scenarios, run by `make bench` and
//! `make reliability` (see `scripts/bench`, `scripts/reliability`). Every figure is
//! printed with its target and written to a Markdown table; where a figure depends
//! on the machine, it is a ratio against a baseline measured in the same run.
//!
//! - [`local`]: a stack of its own (emulator, wire proxy, local stack).
//! - [`flows`]: termination → verified, batch, inactivity scan, expiry lateness.
//! - [`binaries`]: cold-start proxy, peak memory, deployment size.
//! - [`reliability`]: faults on the wire, a process lost between writes,
//!   duplicated and reordered deliveries, racing decisions.
//! - [`report`]: figures and tables.

pub mod binaries;
pub mod flows;
pub mod local;
pub mod reliability;
pub mod report;
