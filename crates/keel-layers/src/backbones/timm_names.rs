//! timm's tensor names for the torchvision architectures whose names differ (timm's ResNets
//! use torchvision's), translated for [`LoadOptions::rename`](crate::LoadOptions). The
//! architectures are the same arithmetic: timm's `efficientnet_b0`, `mobilenetv3_large_100`,
//! `mobilenetv3_small_100` and `convnext_tiny` load into keel's torchvision forms.

use super::mobilenet_v2_timm_key;
use super::mobilenet_v3::{LARGE, SMALL};

/// The translation of timm's names for backbone `name` (one of
/// [`NAMES`](super::NAMES)), when timm names it otherwise than torchvision.
pub fn timm_key(name: &str) -> Option<fn(&str) -> Option<String>> {
    match name {
        "mobilenet_v2" => Some(mobilenet_v2_timm_key),
        "efficientnet_b0" => Some(efficientnet_b0_timm_key),
        "mobilenet_v3_large" => Some(mobilenet_v3_large_timm_key),
        "mobilenet_v3_small" => Some(mobilenet_v3_small_timm_key),
        "convnext_tiny" => Some(convnext_tiny_timm_key),
        _ => None,
    }
}

/// `blocks.{stage}.{block}.{part}` split into its numbers and the rest, for timm's MobileNets.
fn block_parts(module: &str) -> Option<(usize, usize, &str)> {
    let rest = module.strip_prefix("blocks.")?;
    let (stage, rest) = rest.split_once('.')?;
    let (block, part) = rest.split_once('.')?;
    Some((stage.parse().ok()?, block.parse().ok()?, part))
}

/// timm `efficientnet_b0` → torchvision: `conv_stem` → `features.0.0`, `blocks.{s}.{i}.conv_pw`
/// → `features.{s+1}.{i}.block.0.0`, `…se.conv_reduce` → `….block.2.fc1`, …, `conv_head` →
/// `features.8.0`, `classifier` → `classifier.1`.
pub fn efficientnet_b0_timm_key(key: &str) -> Option<String> {
    let (module, tensor) = key.rsplit_once('.')?;
    let torch = match module {
        "conv_stem" => "features.0.0".to_string(),
        "bn1" => "features.0.1".to_string(),
        "conv_head" => "features.8.0".to_string(),
        "bn2" => "features.8.1".to_string(),
        "classifier" => "classifier.1".to_string(),
        _ => {
            let (stage, block, part) = block_parts(module)?;
            // Stage 0 has no expansion: conv_dw, bn1, se, conv_pw, bn2.
            let sub = match (stage, part) {
                (0, "conv_dw") => "0.0",
                (0, "bn1") => "0.1",
                (0, "se.conv_reduce") => "1.fc1",
                (0, "se.conv_expand") => "1.fc2",
                (0, "conv_pw") => "2.0",
                (0, "bn2") => "2.1",
                (_, "conv_pw") => "0.0",
                (_, "bn1") => "0.1",
                (_, "conv_dw") => "1.0",
                (_, "bn2") => "1.1",
                (_, "se.conv_reduce") => "2.fc1",
                (_, "se.conv_expand") => "2.fc2",
                (_, "conv_pwl") => "3.0",
                (_, "bn3") => "3.1",
                _ => return None,
            };
            format!("features.{}.{block}.block.{sub}", stage + 1)
        }
    };
    Some(format!("{torch}.{tensor}"))
}

/// timm `mobilenetv3_large_100` → torchvision `mobilenet_v3_large`.
pub fn mobilenet_v3_large_timm_key(key: &str) -> Option<String> {
    mobilenet_v3_timm_key(key, &[1, 2, 3, 4, 2, 3], &LARGE)
}

/// timm `mobilenetv3_small_100` → torchvision `mobilenet_v3_small`.
pub fn mobilenet_v3_small_timm_key(key: &str) -> Option<String> {
    mobilenet_v3_timm_key(key, &[1, 2, 3, 2, 3], &SMALL)
}

/// timm's MobileNetV3 (blocks in `stages`, then the last convolution as a stage of its own,
/// `conv_head` applied after pooling) → torchvision's `features.{n}.block.{part}`: a block's
/// parts are numbered expansion (when it expands), depthwise, squeeze-and-excitation (when it
/// has one), projection.
fn mobilenet_v3_timm_key(
    key: &str,
    stages: &[usize],
    settings: &[super::mobilenet_v3::Setting],
) -> Option<String> {
    let (module, tensor) = key.rsplit_once('.')?;
    let torch = match module {
        "conv_stem" => "features.0.0".to_string(),
        "bn1" => "features.0.1".to_string(),
        "conv_head" => "classifier.0".to_string(),
        "classifier" => "classifier.3".to_string(),
        _ => {
            let (stage, block, part) = block_parts(module)?;
            let index = 1 + stages.get(..stage)?.iter().sum::<usize>() + block;
            if stage == stages.len() {
                // The last 1×1 convolution: `blocks.{last}.0.conv` and its `bn1`.
                let sub = match part {
                    "conv" => 0,
                    "bn1" => 1,
                    _ => return None,
                };
                return Some(format!("features.{index}.{sub}.{tensor}"));
            }
            let &(inp, _, expanded, _, se, _, _) = settings.get(index - 1)?;
            let expand = usize::from(expanded != inp);
            let (dw, project) = (expand, expand + 1 + usize::from(se));
            let sub = match (expand, part) {
                (0, "conv_dw") | (1, "conv_dw") => format!("{dw}.0"),
                (0, "bn1") | (1, "bn2") => format!("{dw}.1"),
                (1, "conv_pw") => "0.0".to_string(),
                (1, "bn1") => "0.1".to_string(),
                (_, "se.conv_reduce") => format!("{}.fc1", dw + 1),
                (_, "se.conv_expand") => format!("{}.fc2", dw + 1),
                (0, "conv_pw") | (1, "conv_pwl") => format!("{project}.0"),
                (0, "bn2") | (1, "bn3") => format!("{project}.1"),
                _ => return None,
            };
            format!("features.{index}.block.{sub}")
        }
    };
    Some(format!("{torch}.{tensor}"))
}

/// timm `convnext_tiny` → torchvision: `stem.{0,1}` → `features.0.{0,1}`,
/// `stages.{s}.downsample.{0,1}` → `features.{2s}.{0,1}`, `stages.{s}.blocks.{b}.conv_dw` /
/// `norm` / `mlp.fc1` / `mlp.fc2` / `gamma` → `features.{2s+1}.{b}.block.0` / `.2` / `.3` /
/// `.5` / `layer_scale`, `head.norm` → `classifier.0`, `head.fc` → `classifier.2`.
pub fn convnext_tiny_timm_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    Some(match parts[..] {
        ["stem", i, tensor] => format!("features.0.{i}.{tensor}"),
        ["head", "norm", tensor] => format!("classifier.0.{tensor}"),
        ["head", "fc", tensor] => format!("classifier.2.{tensor}"),
        ["stages", s, "downsample", i, tensor] => {
            format!("features.{}.{i}.{tensor}", 2 * s.parse::<usize>().ok()?)
        }
        ["stages", s, "blocks", b, "gamma"] => {
            format!(
                "features.{}.{b}.layer_scale",
                2 * s.parse::<usize>().ok()? + 1
            )
        }
        ["stages", s, "blocks", b, ref module @ .., tensor] => {
            let sub = match module {
                ["conv_dw"] => 0,
                ["norm"] => 2,
                ["mlp", "fc1"] => 3,
                ["mlp", "fc2"] => 5,
                _ => return None,
            };
            let stage = 2 * s.parse::<usize>().ok()? + 1;
            format!("features.{stage}.{b}.block.{sub}.{tensor}")
        }
        _ => return None,
    })
}
