//! String formats (kube-openapi's strfmt registry, restricted to what CRDs use).

use std::sync::LazyLock;

use regex::Regex;

use super::Format;

fn lazy_regex(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("static regex compiles")
}

static HOSTNAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static UUID5_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static CREDIT_CARD_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
    )
});
static SSN_RE: LazyLock<Regex> = LazyLock::new(|| lazy_regex(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$"));
static HEX_COLOR_RE: LazyLock<Regex> = LazyLock::new(|| lazy_regex(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^rgb\([ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*,[ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*,[ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*\)$",
    )
});
static TIME_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"));
static DURATION_PART_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"((?:-[ \t\n\f\r]?)?[0-9]+)[ \t\n\f\r]*([A-Za-zµ]+)"));

pub(super) fn check_format(format: Format, s: &str) -> bool {
    match format {
        Format::BsonObjectId => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        Format::Uri => is_request_uri(s),
        Format::Email => is_email(s),
        Format::Hostname => HOSTNAME_RE.is_match(s) && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63),
        Format::Ipv4 => parse_ipv4_sloppy(s).is_some() || (s.contains('.') && s.parse::<std::net::Ipv6Addr>().is_ok()),
        Format::Ipv6 => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        Format::Cidr => is_cidr(s),
        Format::Mac => is_mac(s),
        Format::Uuid => UUID_RE.is_match(s),
        Format::Uuid3 => UUID3_RE.is_match(s),
        Format::Uuid4 => UUID4_RE.is_match(s),
        Format::Uuid5 => UUID5_RE.is_match(s),
        Format::Isbn => is_isbn10(s) || is_isbn13(s),
        Format::Isbn10 => is_isbn10(s),
        Format::Isbn13 => is_isbn13(s),
        Format::CreditCard => is_credit_card(s),
        Format::Ssn => s.len() == 11 && SSN_RE.is_match(s),
        Format::HexColor => HEX_COLOR_RE.is_match(s),
        Format::RgbColor => RGB_COLOR_RE.is_match(s),
        Format::Byte => is_base64(s),
        Format::Password => true,
        Format::Date => is_date(s),
        Format::Duration => is_duration(s),
        Format::DateTime => is_date_time(s),
    }
}

fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if padding > 2 {
        return false;
    }
    bytes[..bytes.len() - padding]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// RFC 3339 `full-date` as Go's `time.Parse("2006-01-02", …)` accepts it.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year as i32, month)
}

/// go-openapi's `IsDateTime`: date `T` time, case-insensitive.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let Some(caps) = TIME_RE.captures(time) else {
        return false;
    };
    &caps[1] <= "23" && &caps[2] <= "59" && &caps[3] <= "59"
}

/// Go's `time.ParseDuration`, or the lenient "`<n> <unit>`…" syntax strfmt
/// falls back to (`3 days`, `1w`, `5 min`).
fn is_duration(s: &str) -> bool {
    if is_go_duration(s) {
        return true;
    }
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let mut ok = false;
    for caps in DURATION_PART_RE.captures_iter(s) {
        let number = caps[1].trim_start_matches('-').trim();
        if number.parse::<i64>().is_err() {
            return false;
        }
        let unit = caps[2].to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, variant) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(variant)) || unit.eq_ignore_ascii_case(variant) {
                    ok = true;
                }
            }
        }
    }
    ok
}

fn is_go_duration(s: &str) -> bool {
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut had_digits = int_len > 0;
        rest = &rest[int_len..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            had_digits |= frac_len > 0;
            rest = &after_dot[frac_len..];
        }
        if !had_digits {
            return false;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        if !matches!(unit, "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// IPv4 as the old, lenient Go parser read it (leading zeros allowed).
fn parse_ipv4_sloppy(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for slot in &mut out {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        if trimmed.len() > 3 {
            return None;
        }
        let n: u32 = if trimmed.is_empty() { 0 } else { trimmed.parse().ok()? };
        *slot = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return false;
    }
    let Ok(bits) = prefix.parse::<u32>() else {
        return false;
    };
    if parse_ipv4_sloppy(ip).is_some() {
        bits <= 32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx…`, `xx-xx…` or `xxxx.xxxx…`.
fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 14 {
        return false;
    }
    let hex2 = |i: usize| b[i].is_ascii_hexdigit() && b[i + 1].is_ascii_hexdigit();
    if b[2] == b':' || b[2] == b'-' {
        if !(b.len() + 1).is_multiple_of(3) {
            return false;
        }
        let n = (b.len() + 1) / 3;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        let sep = b[2];
        (0..n).all(|i| hex2(3 * i) && (i == n - 1 || b[3 * i + 2] == sep))
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) {
            return false;
        }
        let n = 2 * (b.len() + 1) / 5;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        (0..n / 2).all(|i| hex2(5 * i) && hex2(5 * i + 2) && (i == n / 2 - 1 || b[5 * i + 4] == b'.'))
    } else {
        false
    }
}

fn strip_isbn(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect()
}

fn is_isbn10(s: &str) -> bool {
    let s = strip_isbn(s);
    let b = s.as_bytes();
    if b.len() != 10 || !b[..9].iter().all(u8::is_ascii_digit) || !(b[9].is_ascii_digit() || b[9] == b'X') {
        return false;
    }
    let mut sum: u32 = (0..9).map(|i| (i as u32 + 1) * u32::from(b[i] - b'0')).sum();
    sum += if b[9] == b'X' { 100 } else { 10 * u32::from(b[9] - b'0') };
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let s = strip_isbn(s);
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = (0..12)
        .map(|i| u32::from(b[i] - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
}

fn is_credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !CREDIT_CARD_RE.is_match(&digits) {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d >= 10 {
                d = d % 10 + 1;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// `net/mail.ParseAddress`, approximately: `local@domain`, optionally as
/// `Display Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let s = s.trim();
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => &s[open + 1..s.len() - 1],
        (None, false) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom =
        |part: &str| !part.is_empty() && part.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        !local[1..local.len() - 1].contains(['"', '\n', '\r'])
    } else {
        dot_atom(local)
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        domain.len() > 2
    } else {
        dot_atom(domain)
    };
    local_ok && domain_ok
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    let mut scheme = "";
    let mut rest = s;
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return false,
            ':' => {
                scheme = &s[..i];
                rest = &s[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    if !rest.starts_with('/') {
        return !scheme.is_empty();
    }
    let mut path = rest;
    if !scheme.is_empty()
        && let Some(after) = rest.strip_prefix("//")
    {
        let end = after.find('/').unwrap_or(after.len());
        if !valid_authority(&after[..end]) {
            return false;
        }
        path = &after[end..];
    }
    valid_escapes(path)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn valid_authority(authority: &str) -> bool {
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let ok = u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
        if !ok || !valid_escapes(u) {
            return false;
        }
    }
    let port = if let Some(inner) = host.strip_prefix('[') {
        let Some((literal, after)) = inner.split_once(']') else {
            return false;
        };
        if literal.is_empty() {
            return false;
        }
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None => return false,
        }
    } else {
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) => (n, p),
            None => (host, ""),
        };
        let name_ok = name
            .chars()
            .all(|c| c.is_alphanumeric() || "-._~!$&'()*+,;=%\"<>".contains(c) || !c.is_ascii());
        if !name_ok || !valid_escapes(name) {
            return false;
        }
        port
    };
    port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::test_support::*;

    #[test]
    fn formats() {
        let fmt = |f: &str| json!({"type": "object", "properties": {"v": {"type": "string", "format": f}}});
        let ok = |f: &str, v: &str| validate_spec(fmt(f), json!({"v": v})).is_empty();
        assert!(ok("date-time", "2024-02-29T10:00:00Z"));
        assert!(ok("date-time", "2024-02-29t10:00:00.123+02:00"));
        assert!(!ok("date-time", "2023-02-29T10:00:00Z"));
        assert!(!ok("date-time", "2024-01-01 10:00:00Z"));
        assert!(!ok("date-time", "2024-01-01T25:00:00Z"));
        assert!(ok("datetime", "2024-01-01T00:00:00Z"));
        assert!(ok("date", "2024-12-31"));
        assert!(!ok("date", "2024-13-01"));
        assert!(!ok("date", "24-1-1"));
        assert!(ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("uuid", "123E4567E89B12D3A456426614174000"));
        assert!(!ok("uuid", "not-a-uuid"));
        assert!(ok("uuid4", "123e4567-e89b-42d3-a456-426614174000"));
        assert!(!ok("uuid4", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("byte", "aGVsbG8="));
        assert!(!ok("byte", "aGVsbG8"));
        assert!(!ok("byte", "a$b="));
        assert!(ok("ipv4", "10.0.0.1"));
        assert!(!ok("ipv4", "10.0.0.256"));
        assert!(!ok("ipv4", "::1"));
        assert!(ok("ipv6", "fe80::1"));
        assert!(!ok("ipv6", "10.0.0.1"));
        assert!(ok("cidr", "10.0.0.0/8"));
        assert!(ok("cidr", "fd00::/64"));
        assert!(!ok("cidr", "10.0.0.0/33"));
        assert!(ok("mac", "00:1a:2b:3c:4d:5e"));
        assert!(ok("mac", "001a.2b3c.4d5e"));
        assert!(!ok("mac", "00:1a:2b:3c:4d"));
        assert!(ok("hostname", "example.com"));
        assert!(ok("hostname", "localhost"));
        assert!(!ok("hostname", "-bad-.com"));
        assert!(ok("email", "someone@example.com"));
        assert!(ok("email", "Some One <someone@example.com>"));
        assert!(!ok("email", "not an email"));
        assert!(ok("uri", "https://example.com/path?q=1"));
        assert!(ok("uri", "/absolute/path"));
        assert!(ok("uri", "mailto:someone@example.com"));
        assert!(!ok("uri", "relative/path"));
        assert!(!ok("uri", "http://exa mple.com/"));
        assert!(ok("duration", "1h30m"));
        assert!(ok("duration", "3 days"));
        assert!(ok("duration", "-1.5h"));
        assert!(!ok("duration", "soon"));
        assert!(ok("bsonobjectid", "507f1f77bcf86cd799439011"));
        assert!(ok("hexcolor", "#fff"));
        assert!(ok("rgbcolor", "rgb(255, 0, 10)"));
        assert!(!ok("rgbcolor", "rgb(256,0,0)"));
        assert!(ok("isbn", "978-0321751041"));
        assert!(ok("isbn10", "0321751043"));
        assert!(ok("ssn", "123-45-6789"));
        assert!(ok("creditcard", "4111 1111 1111 1111"));
        assert!(!ok("creditcard", "4111 1111 1111 1112"));
        assert!(ok("password", "anything"));
        // Unsupported formats are ignored, like kube-apiserver does.
        assert!(ok("k8s-something", "whatever"));
        let int32 = json!({"type": "object", "properties": {"v": {"type": "integer", "format": "int32"}}});
        assert!(validate_spec(int32, json!({"v": 1_i64 << 40})).is_empty());

        assert_eq!(
            validate_spec(fmt("uuid"), json!({"v": "abc"})),
            vec!["spec.v: Invalid value: \"abc\": spec.v in body must be of type uuid: \"abc\""]
        );
        assert_eq!(
            validate_spec(fmt("date-time"), json!({"v": "yesterday"})),
            vec!["spec.v: Invalid value: \"yesterday\": spec.v in body must be of type date-time: \"yesterday\""]
        );
        // go-openapi names the format in the type error for non-strings.
        assert_eq!(
            validate_spec(fmt("date"), json!({"v": 5})),
            vec!["spec.v: Invalid value: \"int64\": spec.v in body must be of type date: \"int64\""]
        );
    }
}
