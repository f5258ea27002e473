//! `no_grad`: a scope in which nothing is recorded (inference, evaluation, optimizer updates).

use std::cell::Cell;

thread_local! {
    static DISABLED: Cell<u32> = const { Cell::new(0) };
}

/// Whether ops on this thread record the graph (false inside [`no_grad`]).
pub fn grad_enabled() -> bool {
    DISABLED.with(|d| d.get() == 0)
}

/// Runs `f` with recording off on this thread: parameters act as constants and no op keeps
/// tensors for a backward pass. Scopes nest.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            DISABLED.with(|d| d.set(d.get() - 1));
        }
    }
    DISABLED.with(|d| d.set(d.get() + 1));
    let _restore = Restore;
    f()
}
