//! Data: image folders indexed, not loaded (classes by folder, type by content, bad files
//! skipped and reported or fatal, absurd sizes refused, bad layouts), batches on worker
//! threads independent of the number of workers, the byte cache, idx files, resizing as
//! Pillow and torchvision do, and seeded augmentation.

use crate::harness::{Rng, Runner};
use keel::data::{
    for_each_batch, idx, load_image, resize, Augment, Batch, BatchOptions, Dataset, ImageOptions,
    Images, Preset, Samples,
};
use keel::Device;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The encoded bytes of `img` in `format`.
fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .expect("encode");
    bytes
}

/// A random `w`×`h` RGB image.
pub fn random_image(rng: &mut Rng, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([0, 0, 0].map(|_: u8| rng.uniform(0.0, 255.0) as u8))
    })
}

/// A PNG that says it is `w`×`h` (valid header, no real pixel data).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
        out
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn read_all(images: &Images) -> Vec<(bool, Vec<f32>)> {
    let n: usize = images.sample_shape().iter().product();
    (0..images.len())
        .map(|i| {
            let mut v = vec![0.0; n];
            let ok = images.read(i, &mut v).expect("read");
            (ok, v)
        })
        .collect()
}

fn error_text<T>(r: keel::data::Result<T>) -> String {
    r.err().map(|e| e.to_string()).unwrap_or_default()
}

pub fn image_folder(t: &mut Runner, rng: &mut Rng) {
    let root = scratch("folder");
    for class in ["cats", "dogs"] {
        std::fs::create_dir_all(root.join(class)).expect("dir");
    }
    std::fs::create_dir_all(root.join("dogs/more")).expect("dir");
    image::RgbImage::from_pixel(10, 6, image::Rgb([255, 0, 0]))
        .save(root.join("cats/red.png"))
        .expect("png");
    image::GrayImage::from_pixel(5, 5, image::Luma([128]))
        .save(root.join("cats/grey.png"))
        .expect("png");
    image::RgbaImage::from_pixel(4, 8, image::Rgba([0, 0, 255, 10]))
        .save(root.join("dogs/blue.png"))
        .expect("png");
    // A PNG named .jpg, in a subfolder: the type comes from the bytes.
    let green = image::RgbImage::from_pixel(4, 4, image::Rgb([0, 255, 0]));
    std::fs::write(
        root.join("dogs/more/green.jpg"),
        encode(&green, image::ImageFormat::Png),
    )
    .expect("write");
    std::fs::write(root.join("dogs/notes.txt"), b"not an image").expect("write");
    // A JPEG cut to a third: starts like one, ends early.
    let photo = encode(&random_image(rng, 64, 48), image::ImageFormat::Jpeg);
    std::fs::write(root.join("dogs/truncated.jpg"), &photo[..photo.len() / 3]).expect("write");
    let options = ImageOptions::new(4, Preset::Unit);
    match Images::from_folder(&root, &options) {
        Ok(images) => {
            let labels: Vec<i32> = (0..images.len()).map(|i| images.label(i)).collect();
            t.expect(
                images.classes() == ["cats", "dogs"]
                    && labels == [0, 0, 1, 1, 1]
                    && images.sample_shape() == [4, 4, 3],
                "classes by folder, files below them, resized",
                || {
                    format!(
                        "{:?} {labels:?} {:?}",
                        images.classes(),
                        images.sample_shape()
                    )
                },
            );
            t.expect(
                images.ignored().len() == 1 && images.ignored()[0].ends_with("notes.txt"),
                "a file that is not an image is left out when indexing",
                || format!("{:?}", images.ignored()),
            );
            let values = read_all(&images);
            // Files in name order: grey.png, red.png, blue.png, more/green.jpg, truncated.jpg.
            t.expect(
                (values[0].1[0] - 128.0 / 255.0).abs() < 1e-6
                    && values[1].1[..3] == [1.0, 0.0, 0.0],
                "grey and RGB pixels preprocessed",
                || format!("{:?} {:?}", &values[0].1[..3], &values[1].1[..3]),
            );
            t.expect(
                values[3].0 && values[3].1[..3] == [0.0, 1.0, 0.0],
                "a PNG named .jpg loads",
                || format!("{:?}", values[3]),
            );
            let skipped = images.skipped();
            t.expect(
                !values[4].0
                    && skipped.len() == 1
                    && skipped[0].0.ends_with("truncated.jpg")
                    && skipped[0].1.contains("truncated"),
                "a truncated JPEG is left out and reported by name",
                || format!("{skipped:?}"),
            );
            read_all(&images);
            t.expect(
                images.skipped().len() == 1,
                "a bad file is reported once",
                || format!("{:?}", images.skipped()),
            );
        }
        Err(e) => t.expect(false, "image folder", || e.to_string()),
    }
    let strict = ImageOptions {
        strict: true,
        ..options
    };
    let msg = Images::from_folder(&root, &strict)
        .map(|images| error_text(images.read(4, &mut [0.0; 48])))
        .unwrap_or_else(|e| e.to_string());
    t.expect(
        msg.contains("truncated.jpg") && msg.contains("truncated or corrupt JPEG"),
        "strict mode fails naming the file",
        || msg.clone(),
    );
    std::fs::write(root.join("cats/huge.png"), png_header_only(20_000, 20_000)).expect("write");
    let msg = Images::from_folder(&root, &strict)
        .map(|images| error_text(images.read(1, &mut [0.0; 48])))
        .unwrap_or_else(|e| e.to_string());
    t.expect(
        msg.contains("huge.png") && msg.contains("20000×20000") && msg.contains("refused"),
        "an image too large to decode is refused, naming its size",
        || msg.clone(),
    );
    std::fs::create_dir_all(root.join("empty")).expect("dir");
    let msg = error_text(Images::from_folder(&root, &options));
    t.expect(
        msg.contains("empty") && msg.contains("no files"),
        "an empty class folder",
        || msg.clone(),
    );
    let msg = error_text(Images::from_folder(scratch("no-classes"), &options));
    t.expect(
        msg.contains("no class folders"),
        "a folder without classes",
        || msg.clone(),
    );
}

/// The batches of `data` in `order`, built by `workers` threads.
fn batches(
    data: &dyn Samples,
    order: &[usize],
    size: usize,
    workers: usize,
    augment: &Augment,
) -> Vec<Batch> {
    let options = BatchOptions {
        batch_size: size,
        workers,
        prefetch: workers,
    };
    let mut out = Vec::new();
    for_each_batch(data, order, &options, augment, 7, |b| {
        out.push(b);
        Ok::<(), keel::data::Error>(())
    })
    .expect("batches");
    out
}

pub fn batches_independent_of_workers(t: &mut Runner, rng: &mut Rng) {
    let n = 23;
    let data = Dataset {
        images: rng.values(n * 5 * 4 * 3, 0.0, 1.0),
        labels: (0..n as i32).map(|i| i % 4).collect(),
        shape: vec![5, 4, 3],
        classes: (0..4).map(|i| format!("c{i}")).collect(),
    };
    let mut order: Vec<usize> = (0..n).collect();
    keel::data::Rng::new(3).shuffle(&mut order);
    let augment = Augment {
        flip: true,
        crop: Some(0.6),
    };
    let one = batches(&data, &order, 5, 1, &augment);
    let sizes: Vec<usize> = one.iter().map(|b| b.labels.len()).collect();
    let indices: Vec<usize> = one.iter().flat_map(|b| b.indices.clone()).collect();
    t.expect(
        sizes == [5, 5, 5, 5, 3] && indices == order,
        "batches follow the order, the last one short",
        || format!("{sizes:?} {indices:?}"),
    );
    let labels: Vec<i32> = one.iter().flat_map(|b| b.labels.clone()).collect();
    let want: Vec<i32> = order.iter().map(|&i| data.labels[i]).collect();
    t.expect(labels == want, "labels follow their samples", || {
        format!("{labels:?}")
    });
    for workers in [2, 3, 8] {
        let other = batches(&data, &order, 5, workers, &augment);
        let same = other.len() == one.len()
            && other
                .iter()
                .zip(&one)
                .all(|(a, b)| a.values == b.values && a.labels == b.labels && a.dims == b.dims);
        t.expect(
            same,
            &format!("{workers} workers build the batches one worker builds"),
            || "they differ".into(),
        );
    }
    let plain = batches(&data, &order, 5, 2, &Augment::none());
    t.expect(
        plain[0].values != one[0].values,
        "augmentation changes the samples",
        || "unchanged".into(),
    );
    // An error from the consumer stops everything and comes back.
    let mut seen = 0;
    let result = for_each_batch(
        &data,
        &order,
        &BatchOptions::new(2),
        &Augment::none(),
        0,
        |_| {
            seen += 1;
            if seen == 3 {
                Err(keel::data::Error::Data {
                    path: "consumer".into(),
                    msg: "stop".into(),
                })
            } else {
                Ok(())
            }
        },
    );
    t.expect(
        seen == 3 && result.is_err(),
        "an error from the consumer ends the pass",
        || format!("{seen} batches, {result:?}"),
    );
}

pub fn image_cache(t: &mut Runner, rng: &mut Rng) {
    let root = scratch("cache");
    std::fs::create_dir_all(root.join("a")).expect("dir");
    std::fs::create_dir_all(root.join("b")).expect("dir");
    for i in 0..4 {
        let class = if i % 2 == 0 { "a" } else { "b" };
        random_image(rng, 9 + i, 7)
            .save(root.join(format!("{class}/{i}.png")))
            .expect("png");
    }
    let options = ImageOptions::new(6, Preset::Torchvision);
    let plain = Images::from_folder(&root, &options).expect("index");
    let cached = Images::from_folder(
        &root,
        &ImageOptions {
            cache: true,
            ..options
        },
    )
    .expect("index");
    let first = read_all(&cached);
    t.expect(
        first == read_all(&plain),
        "cached images read as uncached ones",
        || "values differ".into(),
    );
    std::fs::remove_dir_all(&root).expect("remove");
    let again = read_all(&cached);
    t.expect(
        again == first && cached.skipped().is_empty(),
        "a cached image is decoded once (its file is no longer needed)",
        || format!("skipped {:?}", cached.skipped()),
    );
}

/// `resize` against Pillow's `Image.resize(.., BILINEAR)` on random images (growing, shrinking,
/// one axis only, a 1×1 image), and `load_image` against torchvision's `Resize` + `CenterCrop`
/// on random PNGs, byte for byte (tests/fixtures/pillow_resize.bin, from
/// tools/make_resize_fixture.py).
pub fn resize_as_pillow(t: &mut Runner, _rng: &mut Rng) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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
    // A 10000×1 image would be 2,560,000×256 after torchvision's resize: refused, not decoded.
    let path = dir.join("strip.png");
    image::RgbImage::from_pixel(10_000, 1, image::Rgb([9, 9, 9]))
        .save(&path)
        .expect("png");
    let msg = error_text(load_image(&path, 224, Preset::Unit, &Device::cpu()));
    t.expect(
        msg.contains("strip.png") && msg.contains("2560000×256") && msg.contains("refused"),
        "an image whose resize would be absurd is refused",
        || msg.clone(),
    );
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
    let grey = ImageOptions {
        channels: 1,
        ..ImageOptions::new(4, Preset::Unit)
    };
    match Images::from_idx(&dir, idx::Split::Train, None, &grey) {
        Ok(d) => {
            let values = read_all(&d);
            let labels: Vec<i32> = (0..d.len()).map(|i| d.label(i)).collect();
            let ok = labels == [2, 0, 1]
                && d.sample_shape() == [4, 4, 1]
                && (values[0].1[5] - f32::from(pixels[5]) / 255.0).abs() < 1e-6;
            t.expect(ok, "plain and gzip idx files read", || {
                format!("{labels:?} {:?}", d.sample_shape())
            });
        }
        Err(e) => t.expect(false, "idx", || e.to_string()),
    }
    // As RGB at another size, the grey value in every channel.
    match Images::from_idx(
        &dir,
        idx::Split::Train,
        Some(2),
        &ImageOptions::new(8, Preset::Unit),
    ) {
        Ok(d) => {
            let values = read_all(&d);
            let rgb = values[1].1.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]);
            t.expect(
                d.len() == 2 && d.sample_shape() == [8, 8, 3] && rgb,
                "idx images as resized RGB, limited",
                || format!("{} {:?}", d.len(), d.sample_shape()),
            );
        }
        Err(e) => t.expect(false, "idx as RGB", || e.to_string()),
    }
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), b"\x01\x02\x03\x04 junk").expect("write");
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[1], &[0])).expect("write");
    let msg = error_text(Images::from_idx(&dir, idx::Split::Test, None, &grey));
    t.expect(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("magic"),
        "a bad idx file is named",
        || msg.clone(),
    );
}

pub fn augment(t: &mut Runner, rng: &mut Rng) {
    let image = rng.values(4 * 6 * 3, 0.0, 1.0);
    let both = Augment {
        flip: true,
        crop: Some(0.7),
    };
    let run = |augment: &Augment, seed| {
        let mut img = image.clone();
        augment.apply(&mut img, [4, 6, 3], seed);
        img
    };
    t.expect(
        run(&both, 5) == run(&both, 5),
        "augmentation is reproducible by seed",
        || "differs".into(),
    );
    t.expect(
        run(&both, 5) != run(&both, 6) && run(&both, 5) != image,
        "and changes the images",
        || "unchanged".into(),
    );
    let only_flip = Augment {
        flip: true,
        crop: None,
    };
    let flipped = (0..20).map(|s| run(&only_flip, s)).find(|v| *v != image);
    let mirrored = flipped.is_some_and(|v| {
        (0..4).all(|y| {
            (0..6).all(|x| (0..3).all(|c| v[(y * 6 + x) * 3 + c] == image[(y * 6 + 5 - x) * 3 + c]))
        })
    });
    t.expect(mirrored, "a flip mirrors left and right", || {
        "no mirrored image".into()
    });
}
