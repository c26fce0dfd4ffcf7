//! Durations as Kubernetes writes and reads them: Go's `time.ParseDuration` syntax for
//! flags (the units `ms`, `s`, `m`, `h`; no sign), and kubectl's `HumanDuration` for ages.

use std::time::Duration;

/// Parses a Go-style duration such as `40s`, `1m30s`, `1.5h`, `500ms`, or a bare number of
/// seconds (as flags and kubectl accept them).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let bad = || format!("invalid duration {text:?} (examples: 40s, 1m30s, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        // A flag value must never panic the process: out-of-range sums are errors.
        let part = Duration::try_from_secs_f64(number * scale).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A duration (in nanoseconds) the way Kubernetes' `duration.HumanDuration` prints it:
/// seconds below 2 minutes, minutes(+seconds below 10m) below 3 hours, hours(+minutes below
/// 8h) below 2 days, days(+hours below 8d) below 2 years, then years(+days below 8y).
/// Up to a second in the future counts as "0s"; further is `<invalid>`.
pub fn human(nanos: i128) -> String {
    const SECOND: i128 = 1_000_000_000;
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * SECOND);
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * SECOND);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// A duration for messages: `500ms`, `45s`, `2m`, `1m30s`, `2h5m`.
pub fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse("40"), Ok(Duration::from_secs(40)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "5 parsecs",
            "s",
            "soon",
            "5x",
            "1e400s",
            "-5s",
            "99999999999999999999999h",
            "4000000000000000h4000000000000000h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_durations_for_messages() {
        assert_eq!(show(Duration::from_millis(500)), "500ms");
        assert_eq!(show(Duration::from_secs(90)), "1m30s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(7500)), "2h5m");
    }

    #[test]
    fn human_durations_at_the_thresholds() {
        const S: i128 = 1_000_000_000;
        const M: i128 = 60 * S;
        const H: i128 = 60 * M;
        const D: i128 = 24 * H;
        let cases: &[(i128, &str)] = &[
            (-2 * S, "<invalid>"),
            (-S - S / 2, "0s"),
            (-S, "0s"),
            (-S / 2, "0s"),
            (0, "0s"),
            (S - 1, "0s"),
            (45 * S, "45s"),
            (2 * M - 1, "119s"),
            (2 * M, "2m"),
            (5 * M, "5m"),
            (5 * M + 10 * S, "5m10s"),
            (10 * M - 1, "9m59s"),
            (10 * M, "10m"),
            (10 * M + 59 * S, "10m"),
            (3 * H - 1, "179m"),
            (3 * H, "3h"),
            (3 * H + 5 * M, "3h5m"),
            (8 * H - 1, "7h59m"),
            (8 * H, "8h"),
            (48 * H - 1, "47h"),
            (48 * H, "2d"),
            (2 * D + 3 * H, "2d3h"),
            (8 * D - 1, "7d23h"),
            (8 * D, "8d"),
            (730 * D - 1, "729d"),
            (730 * D, "2y"),
            (731 * D + 5 * H, "2y1d"),
            (8 * 365 * D - 1, "7y364d"),
            (8 * 365 * D, "8y"),
            (3000 * D, "8y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human(*nanos), *want, "{nanos}ns");
        }
    }
}
