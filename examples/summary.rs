//! Prints the Keras-style summary of a backbone with a Flatten or GAP head.
//!
//! `cargo run --release --example summary -- --backbone NAME (keel::layers::backbones::NAMES)
//!  --head flatten|gap [--hidden 1024,1024,512] --classes 3 [--input 224] [--trainable-backbone]
//!  [--device auto|wgpu|cpu]`

use clap::Parser;
use keel::layers::{backbones, flatten_head, gap_head, summary, with_head, BackboneOptions, Layer};
use keel::Device;

#[derive(Parser)]
#[command(about = "Prints the summary of a backbone with a head")]
struct Args {
    /// vgg16, mobilenet, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small, resnet18,
    /// resnet50, efficientnet_b0, efficientnet_lite0, convnext_tiny, keras_resnet50 or
    /// keras_mobilenet_v2.
    #[arg(long, default_value = "vgg16")]
    backbone: String,
    /// flatten or gap.
    #[arg(long, default_value = "flatten")]
    head: String,
    /// Hidden Dense sizes, comma-separated (e.g. 1024,1024,512).
    #[arg(long, value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Output classes.
    #[arg(long, default_value_t = 3)]
    classes: usize,
    /// Input height and width.
    #[arg(long, default_value_t = 224)]
    input: usize,
    /// Leave the backbone trainable (frozen by default).
    #[arg(long)]
    trainable_backbone: bool,
    /// Where the weights are made: auto, wgpu or cpu (KEEL_DEVICE when not given).
    #[arg(long, env = "KEEL_DEVICE", default_value = "auto")]
    device: String,
}

fn run() -> keel::layers::Result<()> {
    let args = Args::parse();
    let device = Device::from_name(&args.device)?;
    let options = BackboneOptions::default().input(args.input, args.input);
    let backbone = backbones::by_name(&args.backbone, &options, &device)?;
    backbone.set_trainable(args.trainable_backbone);
    let head = match args.head.as_str() {
        "flatten" => flatten_head(args.classes),
        "gap" => gap_head(args.classes),
        other => {
            eprintln!("error: unknown head `{other}` (flatten, gap)");
            std::process::exit(2);
        }
    }
    .hidden(&args.hidden);
    let model = with_head(backbone, &head, &device, 0)?;
    println!("{}", summary(&model));
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
