//! The writer thread: batches rows into one transaction each, off the hot path.
