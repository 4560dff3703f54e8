//! The rayon pool of the examples and of the loss, HMM and VAE-kernel benchmarks
//! (`benches/losses.rs`, `hmm.rs` and `vae_kernel.rs` include this file).

/// Makes the calling thread a worker of rayon's global pool (as many threads as cores, this
/// one included), as the master thread is in PyTorch's OpenMP pool. A parallel kernel called
/// from this thread then runs a share of its work here. Without it, the thread hands all of
/// the work to the pool and sleeps until the pool is done: each call pays for waking the
/// pool's threads and then this one. Call it first in `main`, before anything uses rayon.
/// Returns false, leaving the pool as it is, where the pool had already been built.
pub fn join_rayon_pool() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}
