//! Metrics computed on the host from outputs and labels: accuracy, top-k accuracy, and the
//! confusion matrix.

/// Indices of the `k` largest values of a row, largest first.
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx.truncate(k);
    idx
}

/// The fraction of rows of `outputs` ([n, classes], row-major) whose largest value is at the label.
pub fn accuracy(outputs: &[f32], labels: &[i32]) -> f32 {
    top_k_accuracy(outputs, labels, 1)
}

/// The fraction of rows whose label is among the `k` largest outputs.
pub fn top_k_accuracy(outputs: &[f32], labels: &[i32], k: usize) -> f32 {
    if labels.is_empty() {
        return 0.0;
    }
    let classes = outputs.len() / labels.len();
    let hits = outputs
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &l)| top_k(row, k).contains(&(l as usize)))
        .count();
    hits as f32 / labels.len() as f32
}

/// `m[true][predicted]` counts.
pub fn confusion_matrix(outputs: &[f32], labels: &[i32], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    if labels.is_empty() {
        return m;
    }
    for (row, &l) in outputs.chunks(outputs.len() / labels.len()).zip(labels) {
        let p = top_k(row, 1)[0];
        if (l as usize) < classes && p < classes {
            m[l as usize][p] += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits() {
        let out = [0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.3, 0.5];
        let labels = [1, 1, 2];
        assert!((accuracy(&out, &labels) - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(top_k_accuracy(&out, &labels, 2), 1.0);
        assert_eq!(confusion_matrix(&out, &labels, 3)[1], vec![1, 1, 0]);
    }
}
