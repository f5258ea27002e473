//! Labelled images decoded when a batch needs them: an image folder (one subfolder per class,
//! as Keras' `image_dataset_from_directory` reads it) is indexed, not loaded, so its size is
//! bounded by the disk, not by memory. idx files (MNIST, Fashion-MNIST) go through the same
//! path from their bytes in memory.

use crate::idx::{read_mnist, Split, FASHION_MNIST_CLASSES};
use crate::image_file::{decode_image, looks_like_image};
use crate::preset::Preset;
use crate::progress::progress_bar;
use crate::resize::resize;
use crate::samples::Samples;
use crate::{Error, Result};
use image::RgbImage;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// How images become samples.
#[derive(Clone, Copy, Debug)]
pub struct ImageOptions {
    /// Height and width every image is resized to (bilinear, as Pillow does).
    pub size: (usize, usize),
    /// 3 for RGB, 1 for grey (grey needs the `Unit` preset).
    pub channels: usize,
    /// Preprocessing of the network the images feed.
    pub preset: Preset,
    /// Fail on the first file that does not decode; by default it is left out and reported
    /// once, by name.
    pub strict: bool,
    /// Keep each image's resized pixels (bytes, not f32) in memory after its first read —
    /// Keras' `.cache()`: h·w·channels bytes per image.
    pub cache: bool,
    /// Show a progress bar while indexing a folder, and name each image left out as it happens
    /// (all of them are in [`Images::skipped`] either way).
    pub progress: bool,
}

impl ImageOptions {
    /// RGB images of `size`×`size` preprocessed with `preset`, lenient, uncached, quiet.
    pub fn new(size: usize, preset: Preset) -> ImageOptions {
        ImageOptions {
            size: (size, size),
            channels: 3,
            preset,
            strict: false,
            cache: false,
            progress: false,
        }
    }
}

/// Where the pixels come from.
enum Source {
    /// Image files, decoded when read.
    Files(Vec<PathBuf>),
    /// Grey images of one size, one after another (idx files).
    Grey {
        height: usize,
        width: usize,
        pixels: Vec<u8>,
    },
}

/// Resized pixels by image once read (`None` inside: the image did not decode).
type PixelCache = Vec<OnceLock<Option<Box<[u8]>>>>;

/// Labelled images read one at a time (see [`Samples`]).
pub struct Images {
    source: Source,
    labels: Vec<i32>,
    classes: Vec<String>,
    options: ImageOptions,
    shape: [usize; 3],
    /// With `options.cache`: each image's pixels after its first read.
    cache: Option<PixelCache>,
    /// Images left out, by index, with the reason.
    skipped: Mutex<BTreeMap<usize, String>>,
    /// Files in the folder that are not images.
    ignored: Vec<PathBuf>,
}

/// Visible entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    Ok(entries)
}

/// Every file under `dir`, depth first, in name order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            files_under(&entry, out)?;
        } else if entry.is_file() {
            out.push(entry);
        }
    }
    Ok(())
}

/// Whether each file starts like an image (read in parallel, with a progress bar titled
/// `what` when `show`).
fn which_are_images(paths: &[&Path], show: bool, what: String) -> Vec<bool> {
    let progress = progress_bar(show, paths.len() as u64, what);
    let is_image = paths
        .par_iter()
        .map(|path| {
            progress.inc(1);
            looks_like_image(path)
        })
        .collect();
    progress.finish_and_clear();
    is_image
}

fn check_options(options: &ImageOptions, what: &Path) -> Result<()> {
    let (h, w) = options.size;
    if h == 0 || w == 0 {
        return Err(Error::data(
            what,
            format!("image size {h}×{w}: both sides must be at least 1"),
        ));
    }
    match (options.channels, options.preset) {
        (3, _) | (1, Preset::Unit) => Ok(()),
        (1, preset) => Err(Error::data(
            what,
            format!(
                "grey images take the `unit` preset; `{}` needs RGB",
                preset.name()
            ),
        )),
        (c, _) => Err(Error::data(
            what,
            format!("{c} channels: images have 1 (grey) or 3 (RGB)"),
        )),
    }
}

impl Images {
    fn new(
        source: Source,
        labels: Vec<i32>,
        classes: Vec<String>,
        options: ImageOptions,
        ignored: Vec<PathBuf>,
    ) -> Images {
        let n = labels.len();
        Images {
            source,
            labels,
            classes,
            shape: [options.size.0, options.size.1, options.channels],
            cache: options
                .cache
                .then(|| (0..n).map(|_| OnceLock::new()).collect()),
            options,
            skipped: Mutex::new(BTreeMap::new()),
            ignored,
        }
    }

    /// Indexes `dir/<class>/…/<image>`: classes are the subfolders in sorted order (labels by
    /// position), images every file below them whose first bytes are an image format keel
    /// decodes (other files are listed in [`ignored`](Images::ignored)). Nothing is decoded
    /// here. A folder without class folders, or a class folder without images, is an error.
    pub fn from_folder(dir: impl AsRef<Path>, options: &ImageOptions) -> Result<Images> {
        let dir = dir.as_ref();
        check_options(options, dir)?;
        let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(Error::data(
                dir,
                "no class folders: expected one subfolder of images per class (e.g. Train/cats, Train/dogs)",
            ));
        }
        let mut candidates: Vec<(PathBuf, i32)> = Vec::new();
        for (label, class_dir) in class_dirs.iter().enumerate() {
            let mut files = Vec::new();
            files_under(class_dir, &mut files)?;
            if files.is_empty() {
                return Err(Error::data(class_dir, "class folder has no files"));
            }
            candidates.extend(files.into_iter().map(|p| (p, label as i32)));
        }
        let paths: Vec<&Path> = candidates.iter().map(|(p, _)| p.as_path()).collect();
        let what = format!("indexing {}", dir.display());
        let is_image = which_are_images(&paths, options.progress, what);
        let (mut files, mut labels, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
        for ((path, label), image) in candidates.into_iter().zip(is_image) {
            if image {
                files.push(path);
                labels.push(label);
            } else {
                ignored.push(path);
            }
        }
        for (label, class_dir) in class_dirs.iter().enumerate() {
            if !labels.contains(&(label as i32)) {
                return Err(Error::data(
                    class_dir,
                    "no file in this class folder is an image (JPEG, PNG, BMP, GIF or WebP, \
                     told by its first bytes)",
                ));
            }
        }
        let classes = class_dirs
            .iter()
            .map(|d| {
                d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Images::new(
            Source::Files(files),
            labels,
            classes,
            *options,
            ignored,
        ))
    }

    /// The images of an MNIST-style folder (`{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
    /// optionally `.gz`), at most `limit` of them, named with Fashion-MNIST's classes.
    pub fn from_idx(
        dir: impl AsRef<Path>,
        split: Split,
        limit: Option<usize>,
        options: &ImageOptions,
    ) -> Result<Images> {
        let dir = dir.as_ref();
        check_options(options, dir)?;
        let mnist = read_mnist(dir, split, limit)?;
        let classes = FASHION_MNIST_CLASSES.map(str::to_string).to_vec();
        if let Some(&bad) = mnist
            .labels
            .iter()
            .find(|&&l| usize::from(l) >= classes.len())
        {
            return Err(Error::data(
                dir,
                format!("label {bad}: MNIST-style sets have 10 classes"),
            ));
        }
        let labels = mnist.labels.iter().map(|&l| i32::from(l)).collect();
        let source = Source::Grey {
            height: mnist.height,
            width: mnist.width,
            pixels: mnist.images,
        };
        Ok(Images::new(source, labels, classes, *options, Vec::new()))
    }

    /// Unlabelled images (every label 0, no class names), for prediction: each path a file, or
    /// a folder standing for every image below it (in name order; other files are left out
    /// and listed in [`ignored`](Images::ignored)).
    pub fn from_paths(paths: &[PathBuf], options: &ImageOptions) -> Result<Images> {
        check_options(options, Path::new("."))?;
        let (mut files, mut ignored) = (Vec::new(), Vec::new());
        for path in paths {
            if path.is_dir() {
                let mut below = Vec::new();
                files_under(path, &mut below)?;
                let refs: Vec<&Path> = below.iter().map(PathBuf::as_path).collect();
                let is_image = which_are_images(&refs, false, String::new());
                for (file, image) in below.into_iter().zip(is_image) {
                    if image {
                        files.push(file);
                    } else {
                        ignored.push(file);
                    }
                }
            } else {
                files.push(path.clone());
            }
        }
        let labels = vec![0; files.len()];
        Ok(Images::new(
            Source::Files(files),
            labels,
            Vec::new(),
            *options,
            ignored,
        ))
    }

    /// The file of image `index`, when the images are files.
    pub fn path(&self, index: usize) -> Option<&Path> {
        match &self.source {
            Source::Files(files) => files.get(index).map(PathBuf::as_path),
            Source::Grey { .. } => None,
        }
    }

    /// The options the images are read with.
    pub fn options(&self) -> &ImageOptions {
        &self.options
    }

    /// Files of the folder that are not images (left out when indexing).
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// Images left out so far because they did not decode: (file, reason).
    pub fn skipped(&self) -> Vec<(String, String)> {
        let skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        skipped
            .iter()
            .map(|(&i, reason)| (self.describe(i), reason.clone()))
            .collect()
    }

    /// Notes that image `index` is left out, printing it the first time.
    fn skip(&self, index: usize, error: &Error) {
        let mut skipped = self.skipped.lock().unwrap_or_else(|e| e.into_inner());
        let reason = match error {
            Error::Image { msg, .. } => msg.clone(),
            other => other.to_string(),
        };
        if skipped.insert(index, reason).is_none() && self.options.progress {
            eprintln!("warning: skipping {error}");
        }
    }

    /// Image `index` resized to the target size, channels last; `None` when it does not decode
    /// and is left out.
    fn resized(&self, index: usize) -> Result<Option<Vec<u8>>> {
        let (h, w) = self.options.size;
        let rgb = match &self.source {
            Source::Files(files) => match decode_image(&files[index]) {
                Ok(rgb) => rgb,
                Err(e @ (Error::Image { .. } | Error::Io { .. })) if !self.options.strict => {
                    self.skip(index, &e);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
            Source::Grey {
                height,
                width,
                pixels,
            } => {
                let grey = &pixels[index * height * width..(index + 1) * height * width];
                if (*height, *width, self.options.channels) == (h, w, 1) {
                    return Ok(Some(grey.to_vec()));
                }
                RgbImage::from_fn(*width as u32, *height as u32, |x, y| {
                    let v = grey[y as usize * width + x as usize];
                    image::Rgb([v, v, v])
                })
            }
        };
        let resized = if rgb.dimensions() == (w as u32, h as u32) {
            rgb
        } else {
            resize(&rgb, h, w)
        };
        Ok(Some(if self.options.channels == 3 {
            resized.into_raw()
        } else {
            // ITU-R 601-2 luma, as Pillow's `convert("L")`.
            resized
                .pixels()
                .map(|p| {
                    let [r, g, b] = p.0.map(u32::from);
                    ((r * 299 + g * 587 + b * 114 + 500) / 1000) as u8
                })
                .collect()
        }))
    }

    /// [`resized`](Images::resized), through the cache when there is one.
    fn pixels(&self, index: usize) -> Result<Option<Cow<'_, [u8]>>> {
        let Some(cache) = &self.cache else {
            return Ok(self.resized(index)?.map(Cow::Owned));
        };
        if cache[index].get().is_none() {
            let pixels = self.resized(index)?.map(Vec::into_boxed_slice);
            let _ = cache[index].set(pixels);
        }
        Ok(cache[index]
            .get()
            .and_then(|p| p.as_deref())
            .map(Cow::Borrowed))
    }
}

impl Samples for Images {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }
    fn classes(&self) -> &[String] {
        &self.classes
    }
    fn label(&self, index: usize) -> i32 {
        self.labels[index]
    }
    fn read(&self, index: usize, out: &mut [f32]) -> Result<bool> {
        let Some(pixels) = self.pixels(index)? else {
            return Ok(false);
        };
        if self.options.channels == 3 {
            for (rgb, value) in pixels.chunks_exact(3).zip(out.chunks_exact_mut(3)) {
                value.copy_from_slice(&self.options.preset.apply([rgb[0], rgb[1], rgb[2]]));
            }
        } else {
            for (&v, value) in pixels.iter().zip(out.iter_mut()) {
                *value = f32::from(v) / 255.0;
            }
        }
        Ok(true)
    }
    fn preset(&self) -> Option<Preset> {
        Some(self.options.preset)
    }
    fn describe(&self, index: usize) -> String {
        self.path(index)
            .map_or_else(|| format!("image {index}"), |p| p.display().to_string())
    }
}
