/// The static (musl) build's allocator. musl's own (mallocng) unmaps freed memory at once, so a
/// wait on 1001 peers paid 6,248 page faults and 2,282 mmap/munmap calls; dlmalloc keeps what it
/// freed for reuse (BENCHMARKS.md, "Why targets are missed"). glibc builds keep glibc's malloc.
/// Either way wrapped in the template engine's memory budget (peerconf::template::budget).
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: peerconf::template::Budgeted<dlmalloc::GlobalDlmalloc> =
    peerconf::template::Budgeted(dlmalloc::GlobalDlmalloc);
#[cfg(not(target_env = "musl"))]
#[global_allocator]
static GLOBAL: peerconf::template::Budgeted<std::alloc::System> =
    peerconf::template::Budgeted(std::alloc::System);

fn main() -> std::process::ExitCode {
    peerconf::run()
}
