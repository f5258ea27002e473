//! `summary()`: Keras' table of layers, output shapes and parameter counts.

use crate::layer::Layer;
use std::fmt;

/// One row of a summary.
#[derive(Clone, Debug)]
pub struct SummaryRow {
    /// Layer name.
    pub name: String,
    /// Keras class name.
    pub kind: String,
    /// Output shape without the batch axis.
    pub output_shape: Vec<usize>,
    /// Every parameter of the layer (moving statistics included, as in Keras).
    pub params: usize,
}

/// A model's summary: one row per top-level layer and the three totals.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The model's name.
    pub model: String,
    /// The rows.
    pub rows: Vec<SummaryRow>,
    /// Total parameters.
    pub total: usize,
    /// Parameters an optimizer updates now.
    pub trainable: usize,
    /// Frozen parameters and batch-norm moving statistics.
    pub non_trainable: usize,
}

/// The summary of `model`.
pub fn summary(model: &dyn Layer) -> Summary {
    let rows = model
        .children()
        .into_iter()
        .map(|l| SummaryRow {
            name: l.name().to_string(),
            kind: l.kind().to_string(),
            output_shape: l.output_shape().to_vec(),
            params: l
                .weights()
                .iter()
                .map(|w| w.param.value().elem_count())
                .sum(),
        })
        .collect();
    let weights = model.weights();
    let count = |trainable: bool| -> usize {
        weights
            .iter()
            .filter(|w| w.trainable() == trainable)
            .map(|w| w.param.value().elem_count())
            .sum()
    };
    let (trainable, non_trainable) = (count(true), count(false));
    Summary {
        model: model.name().to_string(),
        rows,
        total: trainable + non_trainable,
        trainable,
        non_trainable,
    }
}

/// 14714688 → "14,714,688".
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &[usize]| {
            let dims: Vec<String> = s.iter().map(ToString::to_string).collect();
            format!("(None, {})", dims.join(", "))
        };
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    format!("{} ({})", r.name, r.kind),
                    shape(&r.output_shape),
                    grouped(r.params),
                ]
            })
            .collect();
        let headers = ["Layer (type)", "Output Shape", "Param #"];
        let width = |i: usize| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let rule = |c: char| c.to_string().repeat(w0 + w1 + w2);
        writeln!(f, "Model: \"{}\"", self.model)?;
        writeln!(f, "{}", rule('━'))?;
        writeln!(
            f,
            "{:<w0$}{:<w1$}{:>w2$}",
            headers[0], headers[1], headers[2]
        )?;
        writeln!(f, "{}", rule('━'))?;
        for c in &cells {
            writeln!(f, "{:<w0$}{:<w1$}{:>w2$}", c[0], c[1], c[2])?;
        }
        writeln!(f, "{}", rule('━'))?;
        writeln!(f, " Total params: {}", grouped(self.total))?;
        writeln!(f, " Trainable params: {}", grouped(self.trainable))?;
        write!(f, " Non-trainable params: {}", grouped(self.non_trainable))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::grouped(14_714_688), "14,714,688");
        assert_eq!(super::grouped(512), "512");
        assert_eq!(super::grouped(1000), "1,000");
    }
}
