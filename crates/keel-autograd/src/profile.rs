//! A time table by label for one thread: while [`profile`] runs, whatever calls [`record`]
//! adds its seconds to its label's row. The backward pass records each op's rule under the op
//! (`∂ conv 3×3 depthwise`, `∂ batch_norm_train`); keel-layers records each layer's forward
//! pass under its kind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds and calls by label, while a [`profile`] runs on this thread.
type Totals = BTreeMap<String, (f64, usize)>;

thread_local! {
    static TOTALS: RefCell<Option<Totals>> = const { RefCell::new(None) };
}

/// One label's share of a profiled run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileRow {
    /// What ran: a layer kind, or `∂` and an op for a backward rule.
    pub kind: String,
    /// Seconds spent in it.
    pub seconds: f64,
    /// How many times it ran.
    pub calls: usize,
}

/// Runs `f` and returns its result with the time recorded under each label, largest first,
/// and the whole run's seconds (the rest is what no label covers).
pub fn profile<T>(f: impl FnOnce() -> T) -> (T, Vec<ProfileRow>, f64) {
    TOTALS.with(|t| *t.borrow_mut() = Some(Totals::new()));
    let start = Instant::now();
    let result = f();
    let total = start.elapsed().as_secs_f64();
    let totals = TOTALS.with(|t| t.borrow_mut().take()).unwrap_or_default();
    let mut rows: Vec<ProfileRow> = totals
        .into_iter()
        .map(|(kind, (seconds, calls))| ProfileRow {
            kind,
            seconds,
            calls,
        })
        .collect();
    rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    (result, rows, total)
}

/// Whether a [`profile`] runs on this thread (callers build labels only then).
pub fn profiling() -> bool {
    TOTALS.with(|t| t.borrow().is_some())
}

/// Adds the time since `start` to `label`'s row, when a [`profile`] runs.
pub fn record(label: String, start: Instant) {
    let seconds = start.elapsed().as_secs_f64();
    TOTALS.with(|t| {
        if let Some(totals) = t.borrow_mut().as_mut() {
            let entry = totals.entry(label).or_default();
            entry.0 += seconds;
            entry.1 += 1;
        }
    });
}
