//! The components that run inside a node container, all from this one binary.

pub mod apiserver;
