//! An allocator setting for long training and benchmark processes, chosen by the program that
//! wants it (the `food101` command's `train`, the benchmark), never by a library call.

static ONCE: std::sync::Once = std::sync::Once::new();

/// Lets the process keep the memory it frees, so that the next step reuses it.
///
/// Every op allocates its output and every batch its pixels; glibc serves large blocks with fresh
/// `mmap`s (or trims its heap) and hands the pages back on free, so each step page-faults its
/// memory in again: a fifth of inference time, a tenth of a training step for the blocks over
/// 32 MB, and in the two-thread input pipeline the faulting threads contend for the process's page
/// tables. Serving every block from the heap and never trimming it lets steps reuse freed memory,
/// as the arena allocators of TensorFlow and PyTorch do. The price: the process never gives memory
/// back, which suits a training run and not a server or a notebook kernel that lives on after the
/// work. Process-wide, idempotent, and only on glibc (elsewhere it does nothing).
pub fn keep_freed_memory() {
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
