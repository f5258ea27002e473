//! The GEMM design of a wgpu device (subgroup or workgroup-tiled, see `shaders/`), chosen by
//! measuring both on the adapter where both run, once per process, instead of by a fixed rule.
//!
//! With `KEEL_AUTOTUNE_CACHE=FILE` the choice is also kept on disk, one line per adapter,
//! driver and version of the kernels, so that later processes skip the measurement:
//! `ADAPTER | BACKEND | DRIVER | KERNELS<TAB>subgroup` (or `tiled`).

use crate::device::{Device, DeviceKind};
use crate::gpu::GpuContext;
use crate::{Conv2dOptions, Error, Padding, Result, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The environment variable naming the on-disk cache of measured choices.
pub(crate) const CACHE_VARIABLE: &str = "KEEL_AUTOTUNE_CACHE";

/// Chooses the GEMM design of `ctx`: from the cache file named by [`CACHE_VARIABLE`] when it
/// has this adapter, else by measuring (and then adding the choice to that file).
pub(crate) fn choose_gemm(ctx: &Arc<GpuContext>) -> Result<()> {
    let cache = std::env::var_os(CACHE_VARIABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    choose_gemm_cached(ctx, cache.as_deref())
}

/// [`choose_gemm`] with the cache file given. Adapters where only the tiled design runs are
/// left as they are.
pub(crate) fn choose_gemm_cached(ctx: &Arc<GpuContext>, cache: Option<&Path>) -> Result<()> {
    if !ctx.subgroup_capable() {
        return Ok(());
    }
    let key = ctx.tuning_key();
    let cached = cache
        .map(|path| Ok::<_, Error>((path, read_cache(path)?)))
        .transpose()?;
    if let Some((path, text)) = &cached {
        if let Some(subgroup) = lookup(text, path, &key)? {
            ctx.set_subgroup_gemm(subgroup);
            return Ok(());
        }
    }
    let subgroup = measure(ctx)?;
    ctx.set_subgroup_gemm(subgroup);
    if let Some((path, text)) = cached {
        crate::write_atomic(path, remember(&text, &key, subgroup).as_bytes())?;
    }
    Ok(())
}

/// Times a matmul and a forward convolution with each design on `ctx`; true when the subgroup
/// design is the faster.
fn measure(ctx: &Arc<GpuContext>) -> Result<bool> {
    let device = Device(DeviceKind::Wgpu(ctx.clone()));
    let a = Tensor::full(0.5, [256, 512], &device)?;
    let b = Tensor::full(0.25, [512, 256], &device)?;
    let x = Tensor::full(0.5, [2, 28, 28, 64], &device)?;
    let w = Tensor::full(0.1, [3, 3, 64, 64], &device)?;
    let same = Conv2dOptions::default().padding(Padding::Same);
    let run = || -> Result<()> {
        a.matmul(&b)?;
        x.conv2d(&w, &same)?;
        Ok(())
    };
    let seconds = |subgroup: bool| -> Result<f64> {
        ctx.set_subgroup_gemm(subgroup);
        run()?; // compiles the pipelines
        device.synchronize()?;
        let start = Instant::now();
        for _ in 0..3 {
            run()?;
        }
        device.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let subgroup = seconds(true)?;
    let tiled = seconds(false)?;
    Ok(subgroup <= tiled)
}

/// The cache file's text; empty when it does not exist yet.
fn read_cache(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The design `text` records for `key` (true: subgroup), or `None`; a line that is not
/// `KEY<TAB>subgroup|tiled` is an error naming the file and the line.
fn lookup(text: &str, path: &Path, key: &str) -> Result<Option<bool>> {
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let parsed = line.split_once('\t').and_then(|(k, design)| match design {
            "subgroup" => Some((k, true)),
            "tiled" => Some((k, false)),
            _ => None,
        });
        let Some((k, subgroup)) = parsed else {
            return Err(Error::invalid(
                CACHE_VARIABLE,
                format!(
                    "{} line {}: expected `ADAPTER<TAB>subgroup` or `ADAPTER<TAB>tiled`, found {line:?} \
                     (delete the file to measure again)",
                    path.display(),
                    n + 1
                ),
            ));
        };
        if k == key {
            return Ok(Some(subgroup));
        }
    }
    Ok(None)
}

/// `text` with the line of `key` set to the given design (other adapters' lines kept).
fn remember(text: &str, key: &str, subgroup: bool) -> String {
    let design = if subgroup { "subgroup" } else { "tiled" };
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && l.split_once('\t').is_none_or(|(k, _)| k != key))
        .map(str::to_string)
        .collect();
    lines.push(format!("{key}\t{design}"));
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GemmKernels;

    #[test]
    fn lines_are_found_replaced_and_checked() {
        let path = Path::new("tune.txt");
        let text = remember("", "gpu a | Vulkan | 1.0 | 7", true);
        let text = remember(&text, "gpu b | Metal | 2 | 7", false);
        assert_eq!(
            lookup(&text, path, "gpu a | Vulkan | 1.0 | 7").unwrap(),
            Some(true)
        );
        assert_eq!(
            lookup(&text, path, "gpu b | Metal | 2 | 7").unwrap(),
            Some(false)
        );
        assert_eq!(
            lookup(&text, path, "gpu a | Vulkan | 1.1 | 7").unwrap(),
            None
        );
        let text = remember(&text, "gpu a | Vulkan | 1.0 | 7", false);
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            lookup(&text, path, "gpu a | Vulkan | 1.0 | 7").unwrap(),
            Some(false)
        );
        let err = lookup("gpu a\tfastest\n", path, "gpu a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tune.txt line 1"), "{err}");
    }

    /// A second device on the same adapter reads the choice from the file and compiles nothing.
    #[test]
    fn a_cached_choice_skips_the_measurement() {
        let ctx = match GpuContext::open(GemmKernels::Auto) {
            Ok(ctx) => Arc::new(ctx),
            Err(e) => {
                let required = std::env::var("KEEL_REQUIRE_WGPU").is_ok_and(|v| v == "1");
                assert!(!required, "a wgpu adapter (KEEL_REQUIRE_WGPU=1): {e}");
                return;
            }
        };
        if !ctx.subgroup_capable() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("keel-autotune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tune.txt");
        choose_gemm_cached(&ctx, Some(&path)).unwrap();
        let measured = ctx.subgroup_gemm();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            lookup(&text, &path, &ctx.tuning_key()).unwrap(),
            Some(measured)
        );

        // The file says the other design: a fresh device takes it without measuring.
        std::fs::write(&path, remember(&text, &ctx.tuning_key(), !measured)).unwrap();
        let fresh = Arc::new(GpuContext::open(GemmKernels::Auto).unwrap());
        let before = fresh.counters.snapshot();
        choose_gemm_cached(&fresh, Some(&path)).unwrap();
        assert_eq!(fresh.subgroup_gemm(), !measured);
        assert_eq!(
            fresh
                .counters
                .snapshot()
                .since(&before)
                .pipeline_compilations,
            0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
