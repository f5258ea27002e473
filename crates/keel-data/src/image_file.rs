//! Decoding one image file to RGB: the type is read from the file's first bytes, not its
//! extension; a truncated or corrupt JPEG is an error (not a grey-filled image); an image too
//! large to decode safely is refused before it is decoded.

use crate::{Error, Result};
use image::{ImageFormat, RgbImage};
use std::io::{Cursor, Read};
use std::path::Path;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// The most pixels keel decodes from one image: Pillow's decompression-bomb limit
/// (`Image.MAX_IMAGE_PIXELS`, 89,478,485 ≈ 9,459²).
pub const MAX_PIXELS: u64 = 89_478_485;

/// The image formats keel decodes.
const FORMATS: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Bmp,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// The format of an image from its first bytes, if it is one keel decodes.
pub fn sniff_format(head: &[u8]) -> Option<ImageFormat> {
    image::guess_format(head)
        .ok()
        .filter(|f| FORMATS.contains(f))
}

/// Whether the file at `path` starts like an image keel decodes (its first 32 bytes). A file
/// that cannot be read counts as one: its error is reported when it is decoded.
pub fn looks_like_image(path: &Path) -> bool {
    let mut head = Vec::with_capacity(32);
    match std::fs::File::open(path).and_then(|f| f.take(32).read_to_end(&mut head)) {
        Ok(_) => sniff_format(&head).is_some(),
        Err(_) => true,
    }
}

fn image_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Refuses a `width`×`height` image above [`MAX_PIXELS`].
pub(crate) fn check_size(path: &Path, width: usize, height: usize, what: &str) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PIXELS {
        return Err(image_error(
            path,
            format!(
                "{what} would be {width}×{height} = {pixels} pixels, more than the {MAX_PIXELS} \
                 keel accepts; refused"
            ),
        ));
    }
    Ok(())
}

/// Decodes an image file to RGB (grey, RGBA and CMYK are converted), naming the file on
/// failure.
pub fn decode_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let rgb =
        match sniff_format(&bytes) {
            Some(ImageFormat::Jpeg) => decode_jpeg(path, &bytes)?,
            Some(format) => decode_other(path, &bytes, format)?,
            None => return Err(image_error(
                path,
                "not an image keel decodes (JPEG, PNG, BMP, GIF or WebP, told by the first bytes)",
            )),
        };
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(image_error(path, "the image is empty"));
    }
    Ok(rgb)
}

/// JPEG through zune-jpeg in strict mode, which fails on data that ends early or is corrupt
/// where the lenient mode (the `image` crate's) fills the rest with grey.
fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let bad = |e: zune_jpeg::errors::DecodeErrors| {
        image_error(path, format!("truncated or corrupt JPEG: {e}"))
    };
    decoder.decode_headers().map_err(bad)?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| image_error(path, "JPEG without dimensions"))?;
    check_size(path, w, h, "the decoded image")?;
    let pixels = decoder.decode().map_err(bad)?;
    RgbImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| image_error(path, "JPEG decoded to fewer bytes than its size needs"))
}

/// The other formats through the `image` crate, which fails on truncated PNGs.
fn decode_other(path: &Path, bytes: &[u8], format: ImageFormat) -> Result<RgbImage> {
    let reader = || image::ImageReader::with_format(Cursor::new(bytes), format);
    let fail = |e: image::ImageError| image_error(path, e.to_string());
    let (w, h) = reader().into_dimensions().map_err(fail)?;
    check_size(path, w as usize, h as usize, "the decoded image")?;
    Ok(reader().decode().map_err(fail)?.to_rgb8())
}
