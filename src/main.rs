//! The `roster` binary: everything lives in the library.

/// mimalloc instead of glibc malloc: callgrind put malloc/free at ~25% of
/// the instructions of a SCIM GET and ~20% of a POST (JSON values, redb
/// pages, tracing and header strings are short-lived allocations).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    roster::cli::main()
}
