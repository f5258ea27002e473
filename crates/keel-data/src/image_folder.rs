//! An image folder as a data set: one subfolder per class (Keras'
//! `image_dataset_from_directory`), decoded in parallel and resized to the model's input.

use crate::dataset::Dataset;
use crate::preset::{decode_rgb, Preset};
use crate::resize::resize;
use crate::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How to read an image folder.
#[derive(Clone, Copy, Debug)]
pub struct FolderOptions {
    /// Height and width every image is resized to.
    pub size: (usize, usize),
    /// Preprocessing of the backbone the images feed.
    pub preset: Preset,
    /// Fail on the first file that does not decode (by default it is skipped and reported).
    pub strict: bool,
}

/// A loaded image folder.
#[derive(Debug)]
pub struct ImageFolder {
    /// The images, classes named by folder (sorted), labels by folder index.
    pub dataset: Dataset,
    /// Files that did not decode and were skipped.
    pub skipped: Vec<PathBuf>,
}

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

/// Reads `dir/<class>/<image>` for every class folder. A file that does not decode is skipped
/// with a warning naming it (or fails the load when `strict`); a class folder without images,
/// or a folder without class folders, is an error.
pub fn load_image_folder(dir: impl AsRef<Path>, options: &FolderOptions) -> Result<ImageFolder> {
    let dir = dir.as_ref();
    let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(Error::data(dir, "no class folders: expected one subfolder of images per class (e.g. Train/cats, Train/dogs)"));
    }
    let mut files: Vec<(PathBuf, i32)> = Vec::new();
    for (label, class_dir) in class_dirs.iter().enumerate() {
        let images: Vec<PathBuf> = sorted_entries(class_dir)?
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        if images.is_empty() {
            return Err(Error::data(class_dir, "class folder has no files"));
        }
        files.extend(images.into_iter().map(|p| (p, label as i32)));
    }
    let (h, w) = options.size;
    let decoded: Vec<(usize, Result<Vec<f32>>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, (path, _))| {
            (
                i,
                decode_rgb(path).map(|rgb| {
                    let mut v = Vec::with_capacity(h * w * 3);
                    options.preset.extend(&resize(&rgb, h, w), &mut v);
                    v
                }),
            )
        })
        .collect();
    let mut dataset = Dataset {
        images: Vec::with_capacity(files.len() * h * w * 3),
        labels: Vec::with_capacity(files.len()),
        shape: vec![h, w, 3],
        classes: class_dirs
            .iter()
            .map(|d| {
                d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect(),
    };
    let mut skipped = Vec::new();
    for (i, result) in decoded {
        match result {
            Ok(values) => {
                dataset.images.extend(values);
                dataset.labels.push(files[i].1);
            }
            Err(e) if options.strict => return Err(e),
            Err(e) => {
                eprintln!("warning: skipping {e}");
                skipped.push(files[i].0.clone());
            }
        }
    }
    for (label, class_dir) in class_dirs.iter().enumerate() {
        if !dataset.labels.contains(&(label as i32)) {
            return Err(Error::data(
                class_dir,
                "no image in this class folder could be decoded",
            ));
        }
    }
    Ok(ImageFolder { dataset, skipped })
}
