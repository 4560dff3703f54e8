//! The allocator of the examples and of the loss, HMM and VAE-kernel benchmarks
//! (`benches/losses.rs`, `hmm.rs` and `vae_kernel.rs` include this file): mimalloc, keeping
//! freed memory.

/// The examples' allocator. glibc's returns each large tensor buffer to the kernel and faults
/// it in again on the next allocation: a third of the BPNet example's NdArray training time
/// (44 s vs 31 s an epoch). mimalloc keeps them; [`keep_freed_memory`] keeps them longer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its option 15 since mimalloc 2.1): how many
/// milliseconds freed memory is kept before it is returned to the kernel.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Tells mimalloc never to return freed memory to the kernel during training, where a step
/// frees and allocates the same tensor sizes again. mimalloc 3 purges pages left free for a
/// second (its default `purge_delay` of 1000 ms), and each purged page is zeroed by the kernel
/// when it is touched again. Done only where option 15 reads that default, so that a
/// mimalloc with another option table is left alone. Returns whether it was set.
pub fn keep_freed_memory() -> bool {
    // SAFETY: plain reads and writes of mimalloc's option table, valid at any time.
    unsafe {
        let default = mi_option_get(MI_OPTION_PURGE_DELAY) == 1000;
        if default {
            mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
        default
    }
}
