//! Shapes, contiguous strides, broadcasting and strided views.

use crate::{Error, Result};
use std::fmt;

/// The most dimensions a tensor may have (the strided kernels index up to this rank).
pub const MAX_RANK: usize = 8;

/// The dimensions of a tensor, outermost first (row-major, NHWC for images).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this rank.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let resolved = if axis < 0 { axis + rank } else { axis };
        if resolved < 0 || resolved >= rank {
            return Err(Error::invalid(
                op,
                format!("axis {axis} is out of range for shape {self}"),
            ));
        }
        Ok(resolved as usize)
    }

    /// Splits the shape around `axis` into (outer, axis length, inner) element counts.
    pub(crate) fn split_at_axis(&self, axis: usize) -> (usize, usize, usize) {
        let outer = self.0[..axis].iter().product();
        let inner = self.0[axis + 1..].iter().product();
        (outer, self.0[axis], inner)
    }

    /// Fails with the op's name if the shape has a zero-sized dimension or too many dimensions.
    pub(crate) fn check_usable(&self, op: &'static str) -> Result<()> {
        if self.0.contains(&0) {
            return Err(Error::invalid(
                op,
                format!("shape {self} has a zero-sized dimension"),
            ));
        }
        if self.rank() > MAX_RANK {
            return Err(Error::invalid(
                op,
                format!("shape {self} has more than {MAX_RANK} dimensions"),
            ));
        }
        Ok(())
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// NumPy broadcasting of two shapes (dimensions aligned from the right; 1 stretches).
pub fn broadcast_shapes(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
    let rank = a.rank().max(b.rank());
    let mut out = vec![0; rank];
    for (i, slot) in out.iter_mut().enumerate() {
        let da = if i < rank - a.rank() {
            1
        } else {
            a.0[i - (rank - a.rank())]
        };
        let db = if i < rank - b.rank() {
            1
        } else {
            b.0[i - (rank - b.rank())]
        };
        *slot = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shapes(
                    op,
                    a,
                    b,
                    format!("dimension {i} is {da} vs {db}, and neither is 1"),
                ))
            }
        };
    }
    Ok(Shape(out))
}

/// A strided window onto a flat buffer: element `(i0, i1, …)` lives at `offset + Σ iₖ·strides[k]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StridedView {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl StridedView {
    /// The whole of a contiguous tensor.
    pub fn contiguous(shape: &Shape) -> Self {
        StridedView {
            shape: shape.dims().to_vec(),
            strides: shape.strides(),
            offset: 0,
        }
    }

    /// A contiguous tensor read as if it had the (broadcast) shape `target`: stretched dims get stride 0.
    pub fn broadcast_to(shape: &Shape, target: &Shape) -> Self {
        let pad = target.rank() - shape.rank();
        let own = shape.strides();
        let strides = (0..target.rank())
            .map(|i| {
                if i < pad || shape.dims()[i - pad] == 1 {
                    0
                } else {
                    own[i - pad]
                }
            })
            .collect();
        StridedView {
            shape: target.dims().to_vec(),
            strides,
            offset: 0,
        }
    }

    /// The flat offset of the element with the given row-major linear index in this view.
    pub fn offset_of(&self, mut linear: usize) -> usize {
        let mut off = self.offset;
        for d in (0..self.shape.len()).rev() {
            off += (linear % self.shape[d]) * self.strides[d];
            linear /= self.shape[d];
        }
        off
    }

    /// Number of elements in the view.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let a = Shape::new([5, 1, 3]);
        let b = Shape::new([4, 1]);
        assert_eq!(
            broadcast_shapes("add", &a, &b).unwrap(),
            Shape::new([5, 4, 3])
        );
        assert!(broadcast_shapes("add", &Shape::new([2, 3]), &Shape::new([4])).is_err());
    }

    #[test]
    fn broadcast_view_has_zero_strides() {
        let v = StridedView::broadcast_to(&Shape::new([3, 1]), &Shape::new([2, 3, 4]));
        assert_eq!(v.strides, vec![0, 1, 0]);
        assert_eq!(v.offset_of(5), 1); // element (0, 1, 1)
    }
}
