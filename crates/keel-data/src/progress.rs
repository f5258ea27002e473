//! The progress bar keel shows during long work (indexing, features, training epochs).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps titled `what`, with elapsed time and ETA (live figures go in its
/// message); hidden unless `show`.
pub fn progress_bar(show: bool, len: u64, what: String) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what);
    bar
}
