//! Where a strict YAML decode failed, for the `file:line:column: message` errors of every file
//! Kindling reads (cluster configs, lab files, check packs, quiz answers).

/// The line and column (1-based) of a decode error and its first line of text.
pub fn locate(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let message = e
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    (line, column, message)
}
