//! Data: image folders (classes by folder, undecodable files skipped or fatal, bad layouts),
//! idx files (plain and gzip, bad magic), resizing as Pillow and torchvision do, and seeded
//! augmentation.

use crate::harness::{Rng, Runner};
use keel::data::{
    idx, load_image, load_image_folder, resize, Augment, Dataset, FolderOptions, Preset,
};
use keel::Device;
use std::io::Write;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn image_folder(t: &mut Runner, _rng: &mut Rng) {
    let root = scratch("folder");
    std::fs::create_dir_all(root.join("cats")).expect("dir");
    std::fs::create_dir_all(root.join("dogs")).expect("dir");
    image::RgbImage::from_pixel(10, 6, image::Rgb([255, 0, 0]))
        .save(root.join("cats/red.png"))
        .expect("png");
    image::GrayImage::from_pixel(5, 5, image::Luma([128]))
        .save(root.join("cats/grey.png"))
        .expect("png");
    image::RgbaImage::from_pixel(4, 8, image::Rgba([0, 0, 255, 10]))
        .save(root.join("dogs/blue.png"))
        .expect("png");
    std::fs::write(root.join("dogs/broken.jpg"), b"not an image").expect("write");
    let options = FolderOptions {
        size: (4, 4),
        preset: Preset::Unit,
        strict: false,
    };
    match load_image_folder(&root, &options) {
        Ok(f) => {
            let d = &f.dataset;
            t.expect(
                d.classes == ["cats", "dogs"] && d.labels == [0, 0, 1] && d.shape == [4, 4, 3],
                "classes by folder, grey and RGBA as RGB, resized",
                || format!("{:?} {:?} {:?}", d.classes, d.labels, d.shape),
            );
            // Files in name order: grey.png, then red.png.
            t.expect(
                (d.images[0] - 128.0 / 255.0).abs() < 1e-6 && d.images[48..51] == [1.0, 0.0, 0.0],
                "pixel values preprocessed",
                || format!("{:?}", &d.images[..3]),
            );
            t.expect(
                f.skipped.len() == 1 && f.skipped[0].ends_with("broken.jpg"),
                "an undecodable file is skipped and reported",
                || format!("{:?}", f.skipped),
            );
        }
        Err(e) => t.expect(false, "image folder", || e.to_string()),
    }
    let strict = load_image_folder(
        &root,
        &FolderOptions {
            strict: true,
            ..options
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    t.expect(
        strict.contains("broken.jpg"),
        "strict mode fails naming the file",
        || strict.clone(),
    );
    std::fs::create_dir_all(root.join("empty")).expect("dir");
    let empty = load_image_folder(&root, &options)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        empty.contains("empty") && empty.contains("no files"),
        "an empty class folder",
        || empty.clone(),
    );
    let none = scratch("no-classes");
    let msg = load_image_folder(&none, &options)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        msg.contains("no class folders"),
        "a folder without classes",
        || msg.clone(),
    );
}

/// `resize` against Pillow's `Image.resize(.., BILINEAR)` on random images (growing, shrinking,
/// one axis only, a 1×1 image), and `load_image` against torchvision's `Resize` + `CenterCrop`
/// on random PNGs, byte for byte (tests/fixtures/pillow_resize.bin, from
/// tools/make_resize_fixture.py).
pub fn resize_as_pillow(t: &mut Runner, _rng: &mut Rng) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(root.join("tests/fixtures/pillow_resize.bin")).expect("fixture");
    let mut at = 0;
    let mut take = |n: usize| {
        at += n;
        &bytes[at - n..at]
    };
    let word = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let dir = scratch("resize");
    for _ in 0..word(take(4)) {
        let [kind, w, h, ow, oh] = [0; 5].map(|_| word(take(4)));
        let img =
            image::RgbImage::from_raw(w as u32, h as u32, take(w * h * 3).to_vec()).expect("image");
        let want = take(ow * oh * 3).to_vec();
        let (case, got) = if kind == 0 {
            (
                format!("resize {w}x{h} -> {ow}x{oh}"),
                resize(&img, oh, ow).into_raw(),
            )
        } else {
            let path = dir.join(format!("{w}x{h}.png"));
            img.save(&path).expect("png");
            let x = load_image(&path, ow, Preset::Unit, &Device::cpu()).expect("load_image");
            let values = x.to_vec().expect("values");
            let got = values.iter().map(|v| (v * 255.0).round() as u8).collect();
            (format!("load_image {w}x{h} at {ow}"), got)
        };
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        t.expect(
            got.len() == want.len() && differ == 0,
            &format!("as Pillow and torchvision: {case}"),
            || format!("{differ} of {} bytes differ", want.len()),
        );
    }
}

/// An idx file of u8 values.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

pub fn idx_files(t: &mut Runner, rng: &mut Rng) {
    let dir = scratch("idx");
    let pixels: Vec<u8> = (0..3 * 4 * 4)
        .map(|_| (rng.uniform(0.0, 255.0)) as u8)
        .collect();
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx_bytes(&[3, 4, 4], &pixels),
    )
    .expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx_bytes(&[3], &[2, 0, 1])).expect("gzip");
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    match idx::mnist_gray(&dir, idx::Split::Train, None) {
        Ok(d) => {
            let ok = d.labels == [2, 0, 1]
                && d.shape == [4, 4, 1]
                && (d.images[5] - f32::from(pixels[5]) / 255.0).abs() < 1e-6;
            t.expect(ok, "plain and gzip idx files read", || {
                format!("{:?} {:?}", d.labels, d.shape)
            });
        }
        Err(e) => t.expect(false, "idx", || e.to_string()),
    }
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), b"\x01\x02\x03\x04 junk").expect("write");
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[1], &[0])).expect("write");
    let msg = idx::mnist_gray(&dir, idx::Split::Test, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    t.expect(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("magic"),
        "a bad idx file is named",
        || msg.clone(),
    );
}

pub fn augment(t: &mut Runner, rng: &mut Rng) {
    let data = Dataset {
        images: rng.values(2 * 4 * 6 * 3, 0.0, 1.0),
        labels: vec![0, 1],
        shape: vec![4, 6, 3],
        classes: vec!["a".into(), "b".into()],
    };
    let dev = keel::Device::cpu();
    let flip = Augment {
        flip: true,
        crop: Some(0.7),
    };
    let run = |seed| {
        data.batch(&[0, 1], &flip, seed, &dev)
            .and_then(|(x, _)| Ok(x.to_vec()?))
            .expect("batch")
    };
    t.expect(
        run(5) == run(5),
        "augmentation is reproducible by seed",
        || "differs".into(),
    );
    t.expect(
        run(5) != run(6) && run(5) != data.images,
        "and changes the images",
        || "unchanged".into(),
    );
    let only_flip = Augment {
        flip: true,
        crop: None,
    };
    let flipped = (0..20)
        .map(|s| {
            data.batch(&[0], &only_flip, s, &dev)
                .and_then(|(x, _)| Ok(x.to_vec()?))
                .expect("batch")
        })
        .find(|v| *v != data.images[..72]);
    let mirrored = flipped.is_some_and(|v| {
        (0..4).all(|y| {
            (0..6).all(|x| {
                (0..3).all(|c| v[(y * 6 + x) * 3 + c] == data.images[(y * 6 + 5 - x) * 3 + c])
            })
        })
    });
    t.expect(mirrored, "a flip mirrors left and right", || {
        "no mirrored image".into()
    });
}
