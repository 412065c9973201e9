//! People: the directory of people Lapse keeps from HR (who someone is, their job
//! role, their manager of record, where they stand with the organisation), field
//! by field with where each value came from. Issue 23 builds standing access on
//! it; today every HR event updates it (`usecase::record_hr_event`).

pub mod memory;
pub mod person;
pub mod ports;
pub mod usecase;

#[cfg(test)]
mod tests;
