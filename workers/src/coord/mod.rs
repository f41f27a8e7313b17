//! The coordination protocol the control plane may call: workers, leases and the task queue.

pub mod tasks;
