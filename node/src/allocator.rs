//! The memory allocator of every tessera process (master, worker, client):
//! jemalloc.
//!
//! A master serves for weeks while images of a few kilobytes to tens of
//! megabytes pass through it in 1 MiB chunks, on a handful of threads, in
//! bursts. Under glibc's allocator its RSS kept drifting up in the soak
//! (`tests/tests/chaos.rs`, `soak`: x1.13 over 30 minutes, x1.34 over five)
//! while heaptrack showed the live heap level off once redb's page cache
//! (`record/store.rs`, bounded) and the connections' frame buffers had
//! filled: glibc keeps what such a load frees in per-thread arenas, cut up,
//! and returns little of it. mimalloc kept the peak of each burst. jemalloc
//! gives pages that stayed free for a few seconds back to the system (its
//! decay), so a long-lived process's memory follows its live data.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
