//! The fuzz targets' bodies (shared with lapse-core's stable `fuzz_smoke` test).

pub mod bodies;
