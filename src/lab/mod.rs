//! Guided labs: the lab file format, the catalog of labs, checks, progress, and lint.

pub mod catalog;
pub mod checks;
pub mod lint;
pub mod model;
pub mod progress;
pub mod runner;
pub mod session;

pub use catalog::{Catalog, Entry};
pub use model::{Lab, Lang};
