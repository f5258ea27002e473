//! Memory estimates checked before long work: what a model or a training run will allocate,
//! part by part, against the memory the process can still have, so that too large a model is a
//! clear error with the figures instead of an out-of-memory kill minutes later.

use crate::{Error, Result};
use std::fmt;

/// Bytes by part (parameters, optimizer state, activations, …) of one piece of work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    parts: Vec<(String, u64)>,
}

impl MemoryEstimate {
    /// An empty estimate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` for `part` (parts of 0 bytes are left out of the figures).
    pub fn add(mut self, part: impl Into<String>, bytes: u64) -> Self {
        if bytes > 0 {
            self.parts.push((part.into(), bytes));
        }
        self
    }

    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.parts
            .iter()
            .map(|(_, b)| b)
            .fold(0, |a, b| a.saturating_add(*b))
    }

    /// The parts, in the order they were added.
    pub fn parts(&self) -> &[(String, u64)] {
        &self.parts
    }

    /// An error naming `work` and the figures when the estimate is over [`available_memory`]
    /// (nothing is checked where the system does not say).
    pub fn check(&self, work: &str) -> Result<()> {
        match available_memory() {
            Some(available) => self.check_against(work, available),
            None => Ok(()),
        }
    }

    /// An error naming `work` and the figures when the estimate is over `available` bytes.
    pub fn check_against(&self, work: &str, available: u64) -> Result<()> {
        if self.total() <= available {
            return Ok(());
        }
        Err(Error::OutOfMemory {
            work: work.to_string(),
            estimate: self.to_string(),
            available: format_bytes(available),
        })
    }
}

impl fmt::Display for MemoryEstimate {
    /// `5.6 GB (parameters 4.6 GB + gradients 1.0 GB)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_bytes(self.total()))?;
        if !self.parts.is_empty() {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(what, b)| format!("{what} {}", format_bytes(*b)))
                .collect();
            write!(f, " ({})", parts.join(" + "))?;
        }
        Ok(())
    }
}

/// `1.2 GB`, `350 MB`, `12 kB`: decimal units, three significant figures at most.
pub fn format_bytes(bytes: u64) -> String {
    let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    let b = bytes as f64;
    for (scale, unit) in units {
        if b >= scale {
            let v = b / scale;
            return if v >= 100.0 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// Bytes this process can still allocate: `KEEL_MEMORY_LIMIT` (in MiB) when set, else the
/// system's available memory (Linux `MemAvailable`), capped by the process's cgroup limit less
/// what the cgroup uses. `None` where the system does not say.
pub fn available_memory() -> Option<u64> {
    if let Some(limit) = std::env::var("KEEL_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(limit << 20);
    }
    let system = meminfo_available()?;
    Some(cgroup_headroom().map_or(system, |c| c.min(system)))
}

/// `MemAvailable` from /proc/meminfo.
fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The cgroup v2 limit less the cgroup's usage, where there is a limit.
fn cgroup_headroom() -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" (no limit) fails to parse
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_is_an_error_with_the_figures() {
        let estimate = MemoryEstimate::new()
            .add("parameters", 4_600_000_000)
            .add("optimizer state", 9_200_000_000)
            .add("nothing", 0);
        assert_eq!(estimate.total(), 13_800_000_000);
        assert!(estimate.check_against("training", 14_000_000_000).is_ok());
        let message = estimate
            .check_against("training", 8_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(message.contains("training"), "{message}");
        assert!(message.contains("13.8 GB"), "{message}");
        assert!(
            message.contains("parameters 4.6 GB + optimizer state 9.2 GB"),
            "{message}"
        );
        assert!(message.contains("8.0 GB"), "{message}");
        assert!(!message.contains("nothing"), "{message}");
    }

    #[test]
    fn byte_figures() {
        assert_eq!(format_bytes(999), "999 bytes");
        assert_eq!(format_bytes(12_345), "12.3 kB");
        assert_eq!(format_bytes(350_000_000), "350 MB");
        assert_eq!(format_bytes(1_150_000_000_000), "1.1 TB");
    }
}
