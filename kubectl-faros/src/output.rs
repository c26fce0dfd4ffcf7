//! Small output helpers: kubectl-style tables and ages, durations, conditions.

use faros_api::Condition;

/// Prints rows as kubectl does: left-aligned columns separated by three spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The age of an RFC 3339 timestamp, as kubectl prints it (`5s`, `3m2s`, `4h`, `2d3h`).
pub fn age(timestamp: Option<&str>) -> String {
    faros_machinery::table::human_age(timestamp.unwrap_or_default(), jiff::Timestamp::now())
}

/// Conditions, one per line: `  Ready=False (Reason): message`.
pub fn conditions(list: &[Condition]) -> String {
    if list.is_empty() {
        return "  (no conditions reported yet)\n".into();
    }
    let mut out = String::new();
    for c in list {
        out.push_str(&format!("  {}={}", c.type_, c.status));
        if !c.reason.is_empty() {
            out.push_str(&format!(" ({})", c.reason));
        }
        if !c.message.is_empty() {
            out.push_str(&format!(": {}", c.message));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let out = table(
            &["NAME", "READY"],
            &[vec!["a".into(), "True".into()], vec!["longer".into(), "".into()]],
        );
        assert_eq!(out, "NAME     READY\na        True\nlonger\n");
    }
}
