//! One process-wide allocator setting, for the engine's activations and the pipeline's batches.

static ONCE: std::sync::Once = std::sync::Once::new();

/// Every op allocates its output and every batch its pixels; glibc serves large blocks with fresh
/// `mmap`s (or trims its heap) and hands the pages back on free, so each step page-faults its
/// memory in again: a fifth of inference time, a tenth of a training step for the blocks over
/// 32 MB, and 150,000 faults in two seconds of the two-thread input pipeline, where the faulting
/// threads also contend for the process's page tables. Serving every block from the heap and never
/// trimming it lets steps reuse freed memory, as the arena allocators of TensorFlow and PyTorch
/// do. Process-wide, once, and only on glibc.
pub(crate) fn keep_freed_memory() {
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator tunables; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 512 << 20);
        }
    });
}
