/// The static (musl) build's allocator. musl's own (mallocng) unmaps freed memory at once, so a
/// wait on 1001 peers paid 6,248 page faults and 2,282 mmap/munmap calls; dlmalloc keeps what it
/// freed for reuse (BENCHMARKS.md, "Why targets are missed"). glibc builds keep glibc's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    peerconf::run()
}
