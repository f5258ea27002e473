//! Switches that help find kernel bugs.

use std::sync::atomic::{AtomicBool, Ordering};

static POISON: AtomicBool = AtomicBool::new(false);

/// When on, every op's output buffer is filled with NaN before the kernel runs, on every device,
/// so an element a kernel forgot to write shows up as NaN in tests. Off by default (it costs a pass).
pub fn set_poison_outputs(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

/// Whether outputs are poisoned (see [`set_poison_outputs`]).
pub fn poison_outputs() -> bool {
    POISON.load(Ordering::Relaxed)
}
