//! The engine's bounds, in one leaf module that every part of `template` (and `check`) reads.

/// Execution budget of one document (all strings of a JSON template, or every key of a
/// ConfigMap directory), and of one assertion, in minijinja fuel: about one per instruction.
/// A 10 000-member `initial-cluster` line needs well under a tenth of it. What a single
/// filter or operator builds is bounded by the memory budget ([`super::budget`]).
pub(crate) const FUEL: u64 = 1_000_000;

/// A rendered result may not grow past this (a template that explodes its output is a bug,
/// and the emptyDir it lands in is often memory-backed).
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;
